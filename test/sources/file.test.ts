import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { stage, StageCounters } from '../../src/index.js';
import { tmpdir, sleep, waitFor } from '../helpers/run.js';
import type { AuditRecord } from '../../src/audit/record.js';

const line = (serial: number, body = 'pid=1 uid=0') => `type=SYSCALL msg=audit(1700000000.${String(serial % 1000).padStart(3, '0')}:${serial}): ${body}\n`;

function collector(into: AuditRecord[]): Writable {
  return new Writable({
    objectMode: true,
    write(batch: AuditRecord[], _e, cb) {
      t.ok(Array.isArray(batch) && batch.length <= 512, 'batches are bounded arrays');
      into.push(...batch);
      cb();
    },
  });
}

t.test('reads a whole file into record batches', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  let text = '';
  for (let i = 1; i <= 3000; i++) text += line(i);
  fs.writeFileSync(f, text);
  const got: AuditRecord[] = [];
  const counters = new StageCounters();
  await pipeline(stage('file', { path: f, chunkSize: 4096 }, { counters }), collector(got));
  t.equal(got.length, 3000);
  t.same(got.map((r) => r.serial).slice(0, 3), [1, 2, 3]);
  t.equal(got[2999]!.serial, 3000, 'order kept');
  t.equal(counters.extra.bytesRead, Buffer.byteLength(text));
});

t.test('malformed input is counted, reported once with its line, and the good records around it kept', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  const parts = [
    line(1),
    'type=SYSCALL msg=audit(1700000000.002:2', // truncated header
    '\n',
    'arch=c000003e syscall=59\n', // missing header
    line(3),
    Buffer.from([0, 1, 2, 0xff, 0xfe, 10]).toString('latin1'), // binary garbage
    'type=PROCTITLE msg=audit(1700000000.004:4): proctitle=ZZ41\n', // bad hex is the interpreter's problem; the record survives
    'x'.repeat(1024 * 1024) + '\n', // a 1 MB line
    line(5),
    'type=SYSCALL msg=audit(1700000000.006:6): pid=1', // last line without newline
  ];
  fs.writeFileSync(f, parts.join(''), 'latin1');
  const got: AuditRecord[] = [];
  const counters = new StageCounters();
  const warnings: string[] = [];
  const log = { info() {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
  await pipeline(stage('file', { path: f, chunkSize: 4096 }, { counters, log }), collector(got));
  t.same(
    got.map((r) => r.serial),
    [1, 3, 4, 5, 6],
    'every good record is kept',
  );
  t.equal(counters.malformed, 4, 'truncated, headerless, garbage and over-long lines counted');
  t.ok(warnings.some((w) => w.includes(`${f}:2:`) && w.includes('SKAFE_MALFORMED_RECORD')), 'first bad line reported with file and line number');
  t.ok(warnings.some((w) => w.includes(`${f}:7:`) && w.includes("SKAFE_LINE_TOO_LONG")), 'the 1 MB line reported with its number');
  t.equal(warnings.filter((w) => w.includes('SKAFE_MALFORMED_RECORD')).length, 1, 'reported once, then counted');
});

t.test('follow: tails growth, rotation (rename + new file) and truncation like tail -F', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  fs.writeFileSync(f, line(1));
  const got: AuditRecord[] = [];
  const ac = new AbortController();
  const src = stage('file', { path: f, follow: true, pollIntervalMs: 20 }, { signal: ac.signal });
  const done = pipeline(src, collector(got));
  await waitFor(() => got.length === 1, 5000, 'first record');
  fs.appendFileSync(f, line(2));
  await waitFor(() => got.length === 2, 5000, 'appended record');
  // A writer that appends a half line, then the rest: no torn record.
  fs.appendFileSync(f, 'type=SYSCALL msg=audit(1700000000.003:3): pi');
  await sleep(100);
  fs.appendFileSync(f, 'd=3\n');
  await waitFor(() => got.length === 3, 5000, 'record written in two parts');
  t.equal(got[2]!.body, 'pid=3');
  // logrotate: the old file gets one more line after the rename, then a new file appears.
  fs.renameSync(f, f + '.1');
  fs.appendFileSync(f + '.1', line(4));
  fs.writeFileSync(f, line(5));
  await waitFor(() => got.length === 5, 5000, 'records across rotation');
  // copytruncate
  fs.truncateSync(f, 0);
  await sleep(100);
  fs.appendFileSync(f, line(6));
  await waitFor(() => got.length === 6, 5000, 'record after truncation');
  ac.abort();
  await done;
  t.same(
    got.map((r) => r.serial),
    [1, 2, 3, 4, 5, 6],
  );
});

t.test('follow waits for a file that does not exist yet', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'later.log');
  const got: AuditRecord[] = [];
  const ac = new AbortController();
  const log = { info() {}, warn() {}, error() {} };
  const done = pipeline(stage('file', { path: f, follow: true, pollIntervalMs: 20 }, { signal: ac.signal, log }), collector(got));
  await sleep(100);
  fs.writeFileSync(f, line(7));
  await waitFor(() => got.length === 1, 5000, 'record from the late file');
  ac.abort();
  await done;
  t.equal(got[0]!.serial, 7);
});

t.test('a missing file without follow is a clear error', async (t) => {
  await t.rejects(pipeline(stage('file', { path: '/nonexistent/audit.log' }), collector([])), {
    code: 'SKAFE_INPUT_OPEN',
    message: /\/nonexistent\/audit\.log/,
  });
});

t.test('backpressure: a slow consumer holds the reader back', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  let text = '';
  for (let i = 1; i <= 20000; i++) text += line(i);
  fs.writeFileSync(f, text);
  const counters = new StageCounters();
  const src = stage('file', { path: f, chunkSize: 4096 }, { counters });
  let seen = 0;
  let maxAhead = 0;
  await pipeline(
    src,
    new Writable({
      objectMode: true,
      highWaterMark: 1,
      write(batch: AuditRecord[], _e, cb) {
        seen += batch.length;
        maxAhead = Math.max(maxAhead, counters.out - seen);
        setTimeout(cb, 1);
      },
    }),
  );
  t.equal(seen, 20000);
  t.ok(maxAhead < 20 * 512, `reader stayed at most ${maxAhead} records ahead of a slow consumer`);
});

t.test('resume after rotation while stopped: the rotated file is finished first (Filebeat registry)', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  fs.writeFileSync(f, line(1) + line(2) + line(3));
  const st = fs.statSync(f);
  const resume = { dev: st.dev, ino: st.ino, offset: Buffer.byteLength(line(1)) };
  // While the agent is down: logrotate renames, the old file gets one more line, a new file starts.
  fs.renameSync(f, f + '.1');
  fs.appendFileSync(f + '.1', line(4));
  fs.writeFileSync(f, line(5) + line(6));
  const got: AuditRecord[] = [];
  const log = { info() {}, warn() {}, error() {} };
  await pipeline(stage('file', { path: f, resume }, { log }), collector(got));
  t.same(got.map((r) => r.serial), [2, 3, 4, 5, 6], 'nothing lost, nothing twice');
  // Same inode still at the path: plain resume.
  const st2 = fs.statSync(f);
  const got2: AuditRecord[] = [];
  await pipeline(stage('file', { path: f, resume: { dev: st2.dev, ino: st2.ino, offset: Buffer.byteLength(line(5)) } }, { log }), collector(got2));
  t.same(got2.map((r) => r.serial), [6]);
});

t.test('a followed file destroyed mid-read or mid-poll is closed and polled no more', async (t) => {
  // Destroyed while a read or a stat was awaited, the source used to find its
  // file handle gone, reopen the file and poll it forever (keeping the
  // process alive). Destroy at many moments, then look for the file among
  // this process's open files.
  const dir = tmpdir(t);
  const f = path.join(dir, 'audit.log');
  let text = '';
  for (let i = 1; i <= 2000; i++) text += line(i);
  fs.writeFileSync(f, text);
  const real = fs.realpathSync(f);
  const openOnes = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === real;
    } catch {
      return false;
    }
  }).length;
  for (let i = 0; i < 40; i++) {
    const src = stage('file', { path: f, follow: true, pollIntervalMs: 10, chunkSize: 4096 }, {}) as NodeJS.ReadableStream & { destroy(): void };
    src.on('data', () => {});
    src.on('error', () => {});
    await sleep(i % 15);
    src.destroy();
  }
  await sleep(100);
  t.equal(openOnes(), 0, 'no handle on the file is left open');
});
