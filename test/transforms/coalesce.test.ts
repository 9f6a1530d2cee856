import t from 'tap';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stage, StageCounters, parseRecordLine, type AuditRecord } from '../../src/index.js';
import { sleep } from '../helpers/run.js';

const rec = (line: string): AuditRecord => {
  const r = parseRecordLine(line);
  if ('error' in r) throw new Error(r.error);
  return r;
};
const sys = (ms: number, serial: number, extra = '') =>
  rec(`type=SYSCALL msg=audit(1700000000.${String(ms).padStart(3, '0')}:${serial}): arch=c000003e syscall=59 success=yes exit=0 pid=${serial} ppid=1 uid=0 auid=4294967295 comm="x" exe="/bin/x" key=(null)${extra}`);
const cwd = (ms: number, serial: number) => rec(`type=CWD msg=audit(1700000000.${String(ms).padStart(3, '0')}:${serial}): cwd="/"`);
const eoe = (ms: number, serial: number) => rec(`type=EOE msg=audit(1700000000.${String(ms).padStart(3, '0')}:${serial}): `);

async function coalesce(batches: AuditRecord[][], options: Record<string, unknown> = {}, counters = new StageCounters()) {
  const events: any[] = [];
  await pipeline(
    Readable.from(batches, { objectMode: true }),
    stage('coalesce', options, { counters }),
    new Writable({
      objectMode: true,
      write(b: any[], _e, cb) {
        events.push(...b);
        cb();
      },
    }),
  );
  return events;
}

t.test('records sharing an id become one event; interleaved events do not mix', async (t) => {
  const events = await coalesce([[sys(1, 10), sys(1, 11), cwd(1, 10), cwd(1, 11)], [rec('type=PROCTITLE msg=audit(1700000000.001:11): proctitle=2F62696E2F78')]]);
  t.equal(events.length, 2);
  const byId = new Map(events.map((e) => [e.event.id, e]));
  t.same(byId.get('1700000000.001:10').auditd.records.map((r: any) => r.type), ['SYSCALL', 'CWD']);
  t.same(byId.get('1700000000.001:11').auditd.records.map((r: any) => r.type), ['SYSCALL', 'CWD', 'PROCTITLE']);
});

t.test('a LOGIN record and its SYSCALL stay one event (libauparse splits them)', async (t) => {
  const login = rec('type=LOGIN msg=audit(1795533379.210:1155): pid=7348 uid=0 old-auid=4294967295 auid=3001 tty=(none) old-ses=4294967295 ses=5 res=1');
  const s = rec('type=SYSCALL msg=audit(1795533379.210:1155): arch=c000003e syscall=1 success=yes exit=5 a0=1 a1=55 a2=5 a3=1000 items=0 ppid=7328 pid=7348 auid=3001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=5 comm="bash" exe="/usr/bin/bash" key=(null)');
  const events = await coalesce([[login], [s]]);
  t.equal(events.length, 1);
  t.same(events[0].auditd.records.map((r: any) => r.type), ['LOGIN', 'SYSCALL']);
});

t.test('EOE completes an event at once, without waiting for more input', async (t) => {
  const out: any[] = [];
  const c = stage('coalesce', { idleTimeoutMs: 60000, lookahead: 1000 });
  c.on('data', (b: any[]) => out.push(...b));
  (c as any).write([sys(1, 20), cwd(1, 20), eoe(1, 20)]);
  await sleep(20);
  t.equal(out.length, 1, 'emitted before end of input');
  t.notOk(out[0].auditd.records.some((r: any) => r.type === 'EOE'), 'EOE itself carries nothing and is not kept');
  (c as any).end();
});

t.test('without EOE: completes once the input has moved on (lookahead)', async (t) => {
  const out: any[] = [];
  const c = stage('coalesce', { idleTimeoutMs: 60000, lookahead: 3, settleMs: 100000 });
  c.on('data', (b: any[]) => out.push(...b));
  (c as any).write([sys(1, 30), cwd(1, 30)]);
  (c as any).write([sys(1, 31), sys(1, 32)]);
  await sleep(10);
  t.equal(out.length, 0, 'not yet: only 2 records since');
  (c as any).write([sys(1, 33)]);
  await sleep(10);
  t.same(out.map((e) => e.event.id), ['1700000000.001:30'], 'first event completed after 3 later records');
  (c as any).end();
});

t.test('without EOE: completes once event time has moved on (settleMs)', async (t) => {
  const out: any[] = [];
  const c = stage('coalesce', { idleTimeoutMs: 60000, lookahead: 1000, settleMs: 500 });
  c.on('data', (b: any[]) => out.push(...b));
  (c as any).write([sys(1, 40)]);
  (c as any).write([sys(400, 41)]);
  await sleep(10);
  t.equal(out.length, 0);
  (c as any).write([sys(502, 42)]);
  await sleep(10);
  t.same(out.map((e) => e.event.id), ['1700000000.001:40']);
  (c as any).end();
});

t.test('a quiet live source: completes after the idle timeout', async (t) => {
  const out: any[] = [];
  const c = stage('coalesce', { idleTimeoutMs: 50 });
  c.on('data', (b: any[]) => out.push(...b));
  (c as any).write([sys(1, 50), cwd(1, 50)]);
  await sleep(300);
  t.equal(out.length, 1);
  t.equal(out[0].auditd.records.length, 2);
  (c as any).end();
});

t.test('end of input completes everything still open', async (t) => {
  const events = await coalesce([[sys(1, 60), sys(1, 61), cwd(1, 60)]], { lookahead: 1000, idleTimeoutMs: 60000 });
  t.equal(events.length, 2);
});

t.test('memory stays bounded: past maxOpen the oldest event is completed early and counted', async (t) => {
  const counters = new StageCounters();
  const batch: AuditRecord[] = [];
  for (let i = 0; i < 50; i++) batch.push(sys(1, 100 + i));
  const events = await coalesce([batch], { maxOpen: 10, lookahead: 100000, settleMs: 100000, idleTimeoutMs: 60000 }, counters);
  t.equal(events.length, 50, 'no event lost');
  t.equal(counters.extra.evicted, 40, 'evictions counted');
});

t.test('same id from different nodes are different events', async (t) => {
  const a = rec('node=a type=SYSCALL msg=audit(1700000000.001:7): pid=1');
  const b = rec('node=b type=SYSCALL msg=audit(1700000000.001:7): pid=2');
  const events = await coalesce([[a, b]]);
  t.equal(events.length, 2);
});

t.test('worker threads (next stage takes serialized events) give byte-identical output, in order', async (t) => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { fixtures } = await import('../helpers/env.js');
  const { tmpdir } = await import('../helpers/run.js');
  const { buildPipeline } = await import('../../src/pipeline.js');
  const dir = tmpdir(t);
  const outs: string[] = [];
  for (const workers of [0, 2]) {
    const out = path.join(dir, `w${workers}.jsonl`);
    const p = await buildPipeline({ stages: [{ use: 'file', path: fixtures('dev-1', 'audit.log'), chunkSize: 8192 }, { use: 'coalesce', workers }, { use: 'jsonl', path: out }] });
    await p.run();
    t.equal(p.stages[1]!.counters.out, p.stages[2]!.counters.out, `workers=${workers}: counters agree`);
    outs.push(fs.readFileSync(out, 'utf8'));
  }
  t.ok(outs[0]!.length > 100000);
  t.equal(outs[1], outs[0]);
});
