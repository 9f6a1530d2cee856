import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeContext } from '../../src/pipeline.js';
import { StageCounters } from '../../src/stage.js';
import spoolStage, { Spool } from '../../src/transforms/spool.js';
import { unpackEvents } from '../../src/link/codec.js';
import type { SpooledBatch } from '../../src/link/services.js';
import { memoryLogger } from '../helpers/delivery.js';

// The spool on a real LevelDB on disk: resume after restart, acks, the two
// full policies, and a corrupt spool moved aside.

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-spool-'));
const ev = (i: number) => ({ event: { id: `e${i}` }, n: i, pad: 'x'.repeat(200) });

async function open(dir: string, opts: Record<string, unknown> = {}) {
  const log = memoryLogger();
  const abort = new AbortController();
  const ctx = makeContext('stage 1 (spool)', 0, new StageCounters(), { baseDir: dir, log, services: new Map(), signal: abort.signal });
  const s = (await spoolStage.create({ dir: 'spool', ...opts } as never, ctx)) as Spool;
  return { s, log, ctx };
}

function write(s: Spool, batch: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => s.write(batch, (e) => (e ? reject(e) : resolve())));
}

/** Read spooled batches until `n` events (of any kind) have come out. */
async function readEvents(s: Spool, n: number): Promise<{ batches: SpooledBatch[]; events: Array<Record<string, any>> }> {
  const batches: SpooledBatch[] = [];
  const events: Array<Record<string, any>> = [];
  while (events.length < n) {
    const chunk = s.read() as SpooledBatch[] | null;
    if (!chunk) {
      await new Promise((r) => s.once('readable', r));
      continue;
    }
    for (const b of chunk) {
      batches.push(b);
      events.push(...((await unpackEvents(b.data)) as Array<Record<string, any>>));
    }
  }
  return { batches, events };
}

const close = (s: Spool) => new Promise<void>((r) => s.destroy() && s.once('close', () => r()));
const auditOnly = (es: Array<Record<string, any>>) => es.filter((e) => e.event.module !== 'skafe');

t.test('restart resumes unacknowledged events with the same offsets and identity; acks delete', async (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let { s } = await open(dir);
  const id = s.id;
  await write(s, [ev(0), ev(1), ev(2)]);
  await write(s, [ev(3), ev(4)]);
  const first = await readEvents(s, 6); // agent-started + 5
  t.same(auditOnly(first.events).map((e) => e.n), [0, 1, 2, 3, 4]);
  const offsetOf3 = first.batches.find((b) => b.count === 2)!.first; // the [3,4] batch
  s.ack(offsetOf3 - 1); // server has everything before event 3
  await new Promise((r) => setTimeout(r, 100));
  await close(s);

  ({ s } = await open(dir));
  t.equal(s.id, id, 'same spool identity after restart');
  const again = await readEvents(s, 3); // [3,4] + the new agent-started
  t.same(auditOnly(again.events).map((e) => e.n), [3, 4], 'only the unacknowledged events come back');
  t.equal(again.batches[0]!.first, offsetOf3, 'with their original offsets');
  t.ok(s.nextOffset() > offsetOf3 + 1, 'new offsets continue after the old ones');
  await close(s);
});

t.test("drop_oldest: over max_bytes the oldest go, counted, with a loss event", async (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { s, ctx, log } = await open(dir, { when_full: 'drop_oldest', max_bytes: 600 });
  for (let i = 0; i < 40; i++) await write(s, [ev(i), ev(i + 1000)]);
  t.ok((ctx.counters.extra.lost ?? 0) > 0, `lost counted (${ctx.counters.extra.lost})`);
  t.match(log.lines.join('\n'), /dropped \d+ unsent events/);
  const { events } = await readEvents(s, 5);
  const all = [...events];
  // drain what is there
  for (let c; (c = s.read() as SpooledBatch[] | null); ) for (const b of c) all.push(...((await unpackEvents(b.data)) as never[]));
  t.ok(all.some((e) => e.event.action === 'spool-overflow' && e.skafe.lost > 0), 'a spool-overflow loss event is in the stream');
  t.notOk(all.some((e) => e.n === 0), 'the oldest event was dropped');
  await close(s);
});

t.test('drop_oldest after events were read out for the link: counted as unacknowledged, not lost, and they still go out', async (t) => {
  /** Two events, read as the link reads what it sends (no ack comes), then 38 batches more into a 600-byte spool. */
  async function overflowAfterRead(dir: string, statusEvents: boolean) {
    const { s, ctx, log } = await open(dir, { when_full: 'drop_oldest', max_bytes: 600, status_events: statusEvents });
    await write(s, [ev(0), ev(1)]);
    const out = (await readEvents(s, statusEvents ? 3 : 2)).events;
    t.same(auditOnly(out).map((e) => e.n), [0, 1]);
    for (let i = 2; i < 40; i++) await write(s, [ev(i), ev(i + 1000)]);
    // everything left, also what is still on disk: until nothing more comes for 300 ms
    for (;;) {
      const c = s.read() as SpooledBatch[] | null;
      if (c) for (const b of c) out.push(...((await unpackEvents(b.data)) as never[]));
      else if (!(await Promise.race([new Promise((r) => s.once('readable', () => r(true))), new Promise((r) => setTimeout(() => r(false), 300))]))) break;
    }
    await close(s);
    return { out, log, counters: ctx.counters, unacked: ctx.counters.extra.droppedUnacknowledged ?? 0, lost: ctx.counters.extra.lost ?? 0 };
  }
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

  const plain = await overflowAfterRead(path.join(dir, 'plain'), false);
  t.ok(plain.unacked >= 2, `the events read out and not acknowledged were dropped as unacknowledged (${plain.unacked})`);
  t.ok(plain.lost > 0, `unsent ones dropped as lost (${plain.lost})`);
  t.equal(plain.counters.dropped, plain.lost + plain.unacked, 'dropped counts both');
  t.equal(plain.out.length + plain.lost, 2 + 38 * 2, 'every event written came out of the spool or is counted as lost, none twice');
  t.match(plain.log.lines.join('\n'), /dropped (\d+ unsent events and )?\d+ already read out for the link and not yet acknowledged \(lost only if the link fails before the server has them\)/, 'the report tells them apart');

  // With status events (themselves dropped in turn as the oldest): the loss events tell the two apart.
  const withStatus = await overflowAfterRead(path.join(dir, 'status'), true);
  const overflow = withStatus.out.filter((e) => e.event.action === 'spool-overflow');
  t.ok(overflow.some((e) => e.skafe.unacknowledged > 0), 'a loss event carries an unacknowledged count');
  t.ok(overflow.every((e) => e.skafe.lost + (e.skafe.unacknowledged ?? 0) > 0 && e.skafe.lost <= withStatus.lost), 'each counts what it dropped');
});

t.test('block: over max_bytes the writer waits until an ack frees space', async (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { s, ctx } = await open(dir, { max_bytes: 2000 });
  let blockedWrite = false;
  for (let i = 0; i < 30; i++) {
    const w = write(s, [ev(i), ev(i + 100), ev(i + 200)]);
    const done = await Promise.race([w.then(() => true), new Promise((r) => setTimeout(() => r(false), 200))]);
    if (!done) {
      blockedWrite = true;
      t.equal(ctx.counters.extra.blocked, 1, 'blocked counted');
      s.ack(s.nextOffset() - 1);
      await w;
      t.pass('the write completed after the ack');
      break;
    }
  }
  t.ok(blockedWrite, 'a write blocked at the byte cap');
  t.equal(ctx.counters.extra.lost ?? 0, 0, 'nothing lost under block');
  await close(s);
});

t.test('a corrupt spool is moved aside, reported, and a fresh one started', async (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let { s } = await open(dir);
  await write(s, [ev(1)]);
  const oldId = s.id;
  await close(s);
  const spoolDir = path.join(dir, 'spool');
  for (const f of fs.readdirSync(spoolDir)) if (f.startsWith('MANIFEST-')) fs.writeFileSync(path.join(spoolDir, f), Buffer.alloc(500, 0xab));
  let log;
  ({ s, log } = await open(dir));
  t.not(s.id, oldId, 'fresh spool identity');
  const aside = fs.readdirSync(dir).filter((f) => f.startsWith('spool.corrupt-'));
  t.equal(aside.length, 1, 'old spool moved aside');
  t.match(log.lines.join('\n'), /corrupt.*moved aside/);
  const { events } = await readEvents(s, 2);
  t.equal(events[0]!.event.action, 'spool-corrupt', 'reported as an event');
  t.equal(events[0]!.skafe.spool.moved_to, path.join(dir, aside[0]!));
  await close(s);
});

t.test('entries fit the link frame: big batches split, an event too big alone becomes an event-too-large alert', async (t) => {
  const dir = tmp();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { randomBytes } = await import('node:crypto');
  const max = 4096;
  const { s, ctx, log } = await open(dir, { max_entry_bytes: max });
  // random hex packs to about half its size: 20 × ~500 bytes need several entries
  const small = Array.from({ length: 20 }, (_, i) => ({ event: { id: `s${i}` }, n: i, data: randomBytes(500).toString('hex') }));
  const huge = { event: { id: 'huge' }, n: 99, data: randomBytes(10_000).toString('hex') };
  await write(s, [...small.slice(0, 10), huge, ...small.slice(10)]);
  const out = await readEvents(s, 22); // agent-started + 21
  t.ok(out.batches.every((b) => b.data.length <= max), `every entry fits ${max} bytes (largest ${Math.max(...out.batches.map((b) => b.data.length))})`);
  t.ok(out.batches.length > 3, `split into ${out.batches.length} entries`);
  for (let i = 1; i < out.batches.length; i++) {
    const prev = out.batches[i - 1]!;
    if (out.batches[i]!.first !== prev.first + prev.count) t.fail('offsets are not consecutive');
  }
  const audit = auditOnly(out.events);
  t.same(audit.map((e) => e.n), [...Array(20).keys()], 'every event that fits, in order');
  const alert = out.events.find((e) => e.event.action === 'event-too-large');
  t.ok(alert, 'the event too large for any entry is replaced by an alert');
  t.equal(alert?.skafe?.original?.id, 'huge', 'the alert names it');
  t.equal(alert?.event?.kind, 'alert');
  t.equal(ctx.counters.extra.lost, 1, 'counted as lost');
  t.match(log.lines.join('\n'), /event huge is \d+ bytes packed, over max_entry_bytes 4096/, 'and logged');
  await close(s);
});
