// Where the server queue cuts each log back after a crash: with a fan-out to
// two logs, one log is ahead of the other when a release is stored. The queue
// must store, for each file, where that file ended after the released batch
// (not where it ends now), so each log is cut back to exactly its own released
// lines and the re-sent batches land once in each.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stages } from '../../src/registry.js';
import { StageCounters, type StageContext } from '../../src/stage.js';
import { DELIVERED, type DeliveredHook } from '../../src/sinks/serialize.js';
import { setRelease, type SinkPosition } from '../../src/link/services.js';

const quiet = { info() {}, warn() {}, error() {} };

function context(dir: string): StageContext {
  return { baseDir: dir, index: 1, name: 'queue', counters: new StageCounters(), log: quiet, signal: new AbortController().signal, problem() {}, services: new Map() };
}

t.test('two logs at different points: each is cut back to where it stood at the release', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-queue-pos-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = { events: path.join(dir, 'events.jsonl'), alerts: path.join(dir, 'alerts.jsonl') };
  const line = (seq: number) => JSON.stringify({ event: { id: `1.0:${seq}` } }) + '\n';
  const append = (f: string, seq: number): SinkPosition => {
    fs.appendFileSync(f, line(seq));
    const st = fs.statSync(f);
    return { path: f, dev: st.dev, ino: st.ino, size: st.size };
  };

  const ctx = context(dir);
  const q = (await stages.queue!.create({ dir: 'queue', sink_files: [files.events, files.alerts] }, ctx)) as NodeJS.ReadWriteStream & { destroy(): void };
  const hook = ctx.services.get(DELIVERED) as DeliveredHook;
  // As a fan-out reports its branches: the event log's sink has written batches 1–3, the alert log's only 1.
  const sizeAt: Record<string, number> = {};
  for (const seq of [1, 2, 3]) {
    const p = append(files.events, seq);
    if (seq === 1) sizeAt.events = p.size;
    hook([], 'events', p, seq);
  }
  const pa = append(files.alerts, 1);
  sizeAt.alerts = pa.size;
  hook([], 'alerts', pa, 1);
  // …so batch 1 is released (both wrote it).
  const released: unknown[] = [];
  setRelease(released, 1);
  hook(released, 'alerts');
  await new Promise((r) => setTimeout(r, 200)); // the release is stored within 20 ms
  // A crash: nothing more is stored. The logs hold more than was released.
  q.destroy();
  await new Promise((r) => setTimeout(r, 200));
  append(files.alerts, 2);
  t.ok(fs.statSync(files.events).size > sizeAt.events!, 'the event log is past the release');

  const again = (await stages.queue!.create({ dir: 'queue', sink_files: [files.events, files.alerts] }, context(dir))) as NodeJS.ReadWriteStream & { destroy(): void };
  t.equal(fs.statSync(files.events).size, sizeAt.events, 'event log cut back to its end after batch 1');
  t.equal(fs.statSync(files.alerts).size, sizeAt.alerts, 'alert log cut back to its end after batch 1');
  t.same(fs.readFileSync(files.events, 'utf8'), line(1), 'whole lines only, the released ones');
  again.destroy();
});

t.test('a crash before the first release: each log is cut back to where it stood when the queue started', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-queue-pos-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = { events: path.join(dir, 'events.jsonl'), alerts: path.join(dir, 'alerts.jsonl') };
  const before = JSON.stringify({ event: { id: '0.0:1' } }) + '\n';
  fs.writeFileSync(files.events, before); // from an earlier run; the alert log does not exist yet
  const q = (await stages.queue!.create({ dir: 'queue', sink_files: [files.events, files.alerts] }, context(dir))) as NodeJS.ReadWriteStream & { destroy(): void };
  // The first batch reaches both logs, and the server dies before any release is stored.
  const first = JSON.stringify({ event: { id: '1.0:1' } }) + '\n';
  fs.appendFileSync(files.events, first);
  fs.writeFileSync(files.alerts, first);
  q.destroy();
  await new Promise((r) => setTimeout(r, 200));

  const again = (await stages.queue!.create({ dir: 'queue', sink_files: [files.events, files.alerts] }, context(dir))) as NodeJS.ReadWriteStream & { destroy(): void };
  t.equal(fs.readFileSync(files.events, 'utf8'), before, 'the event log keeps what it held before, not the unreleased batch');
  t.equal(fs.statSync(files.alerts).size, 0, 'the alert log, created after the queue started, is cut back to nothing');
  again.destroy();
});
