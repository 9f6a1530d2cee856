// What this host gives two threads of plain JavaScript over one: the peer the
// rule stage's 2 ÷ 1 workers figure is read against, measured in the same run,
// in turns with the stage's bursts so the host's drift falls on both alike.
//
// Each thread parses JSON lines (the bench's own events), runs a regex over a
// field and writes the line back as bytes into a buffer of its own: the shape of
// a rule worker's day (read, match, write), with V8's allocation and garbage
// collection, and nothing shared and no messages between the threads during
// the timed work. Two such threads are the most two rule workers could give on
// this host; what the stage loses beyond that is its own (the feeding thread,
// the hand-offs between threads).
import { Worker } from 'node:worker_threads';

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const lines = workerData;
const re = /^\\/(usr\\/)?s?bin\\/[a-z0-9_.-]+$/;
const out = Buffer.allocUnsafe(1 << 20);
parentPort.on('message', (n) => {
  let hits = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const e = JSON.parse(lines[i % lines.length]);
    const exe = e.process && typeof e.process.executable === 'string' ? e.process.executable : '';
    if (re.test(exe)) hits++;
    e.event = { kind: hits & 1 ? 'alert' : 'event' };
    const s = JSON.stringify(e);
    if (at + s.length * 3 > out.length) at = 0;
    at += out.write(s, at);
  }
  parentPort.postMessage(hits);
});
`;

export interface HostScaling {
  /** one timed turn: `threads` threads each doing the same fixed work; its seconds */
  turn(threads: 1 | 2): Promise<number>;
  close(): Promise<void>;
}

/**
 * Two threads kept up for the whole run (as the stage's workers are), warmed,
 * and a unit of work sized to take about `seconds` on one thread now.
 */
export async function hostScaling(lines: string[], seconds: number): Promise<HostScaling> {
  const workers = [0, 1].map(() => new Worker(workerSource, { eval: true, workerData: lines }));
  // One turn at a time: each thread's answer settles that turn's promise.
  const settle: Array<{ resolve(): void; reject(e: Error): void } | undefined> = [];
  workers.forEach((w, i) => {
    w.on('message', () => settle[i]?.resolve());
    w.on('error', (e) => settle[i]?.reject(e));
  });
  const run = (k: number, n: number) =>
    Promise.all(
      workers.slice(0, k).map(
        (w, i) =>
          new Promise<void>((resolve, reject) => {
            settle[i] = { resolve, reject };
            w.postMessage(n);
          }),
      ),
    );
  const timed = async (k: number, n: number) => {
    const t = process.hrtime.bigint();
    await run(k, n);
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  // Warm both threads, then size the work.
  await run(2, 20_000);
  await run(2, 20_000);
  const probe = 20_000;
  const n = Math.max(probe, Math.round((probe * seconds) / (await timed(1, probe))));
  return {
    turn: (threads) => timed(threads, n),
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
