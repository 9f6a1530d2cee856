// Raw mode of the text sources (the next stage takes RawRecords: coalesce):
// lines stay bytes and the native scanner reads their headers. Whatever the
// input, the records, their order, the counters and every problem with its
// line number must be what the text mode gives. And file → coalesce → jsonl
// must write the same bytes with and without the native code.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import fileStage from '../../src/sources/file.js';
import { StageCounters, type StageContext, type RecordProblem } from '../../src/stage.js';
import { RawRecord } from '../../src/audit/raw-record.js';
import { nativeInterpreterAvailable } from '../../src/audit/native-interpret.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { tmpdir, waitFor, sleep } from '../helpers/run.js';
import { buildPipeline } from '../../src/pipeline.js';
import { skafeBin } from '../helpers/env.js';

const rec = (serial: number, body = 'arch=c000003e syscall=59 success=yes exit=0 pid=1 uid=0 comm="ls" exe="/usr/bin/ls" key=(null)', type = 'SYSCALL') =>
  `type=${type} msg=audit(1700000000.${String(serial % 1000).padStart(3, '0')}:${serial}): ${body}\n`;

/** A log of every kind of line the text sources meet, good and bad, many of them straddling 4 KB chunks. */
function nastyLog(): Buffer {
  const parts: Array<string | Buffer> = [];
  let serial = 1;
  for (let round = 0; round < 40; round++) {
    parts.push(rec(serial++));
    parts.push(rec(serial, 'argc=2 a0="ls" a1="-l"', 'EXECVE'));
    parts.push(rec(serial++, 'proctitle=6C73002D6C', 'PROCTITLE'));
    parts.push('\n'); // empty
    parts.push('\r\n'); // a lone CR
    parts.push(rec(serial++).replace('\n', '\r\n')); // CRLF
    parts.push('node=host-ü ' + rec(serial++)); // node= prefix, not ASCII
    parts.push(rec(serial++, 'pid=1 comm="ünïcödé 日本"')); // multi-byte UTF-8 (straddles chunks somewhere)
    parts.push(Buffer.concat([Buffer.from(rec(serial++, 'pid=1 comm="x').slice(0, -1)), Buffer.from([0xff, 0xfe]), Buffer.from('"\n')])); // invalid UTF-8
    parts.push(rec(serial++, 'pid=1', '1300')); // numeric type
    parts.push(rec(serial++, 'pid=1', 'UNKNOWN[1334]'));
    parts.push(rec(serial++, 'pid=1', 'NOT_A_TYPE_WE_KNOW'));
    parts.push(rec(serial++, 'pid=1', 'bad-type'));
    parts.push(`audit(1700000000.001:${serial++}): pid=1 uid=0\n`); // bare netlink form
    parts.push(`type=SYSCALL msg=audit(1700000000.001:1234567890123456${round}): pid=1\n`); // 17-digit serial
    parts.push(`type=SYSCALL msg=audit(1700000000.001:${serial++}): pid=1 uid=0\x1dUID="root" AUID="unset"\n`); // ENRICHED
    parts.push('type=SYSCALL msg=audit(1700000000.002:2'); // truncated header…
    parts.push('\n');
    parts.push('arch=c000003e syscall=59\n'); // no header
    parts.push(Buffer.from([0, 1, 2, 0xff, 0xfe, 10])); // garbage
    parts.push(rec(serial++, 'pid=1 comm="' + 'é'.repeat(150) + '"')); // 300+ bytes, under 300 characters
    parts.push(rec(serial++, 'pid=1 comm="' + 'x'.repeat(400) + '"')); // over the limit
    if (round % 8 === 0) parts.push('y'.repeat(5000) + '\n'); // far over: longer than a chunk
    parts.push(rec(serial++, 'pid=1 comm="' + '€'.repeat(95) + '"')); // 3-byte characters near the limit
  }
  parts.push(rec(serial++).slice(0, -1)); // last line without a newline
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

const plain = (r: AuditRecord) => ({ type: r.type, typeNum: r.typeNum, node: r.node, sec: r.sec, msec: r.msec, serial: r.serial, id: r.id, body: r.body, enriched: r.enriched });

async function read(file: string, raw: boolean): Promise<{ records: object[]; raws: number; problems: RecordProblem[]; counters: StageCounters }> {
  const counters = new StageCounters();
  const problems: RecordProblem[] = [];
  const quiet = { info() {}, warn() {}, error() {} };
  const ctx: StageContext = {
    baseDir: path.dirname(file),
    index: 0,
    name: 'file',
    counters,
    log: quiet,
    signal: new AbortController().signal,
    services: new Map(),
    problem(p) {
      counters.malformed++;
      problems.push(p);
    },
    rawRecordsOutput: raw,
  };
  const src = (await fileStage.create({ path: file, chunkSize: 4096, maxLineLength: 300 }, ctx)) as Readable;
  const records: object[] = [];
  let raws = 0;
  await pipeline(
    src,
    new Writable({
      objectMode: true,
      write(batch: AuditRecord[], _e, cb) {
        for (const r of batch) {
          if (r instanceof RawRecord) raws++;
          records.push(plain(r));
        }
        cb();
      },
    }),
  );
  return { records, raws, problems, counters };
}

t.test('raw mode reads every line as the text mode does', async (t) => {
  if (!t.ok(nativeInterpreterAvailable(), 'the native scanner is built')) return;
  const dir = tmpdir(t);
  const file = path.join(dir, 'audit.log');
  fs.writeFileSync(file, nastyLog());
  const text = await read(file, false);
  const raw = await read(file, true);
  t.equal(text.raws, 0, 'text mode: no raw records');
  t.ok(raw.raws > raw.records.length / 3, `raw mode: most records raw (${raw.raws} of ${raw.records.length})`);
  t.same(raw.records, text.records, `the same ${text.records.length} records, in order`);
  t.same(raw.problems, text.problems, `the same ${text.problems.length} problems, with their line numbers`);
  t.ok(text.problems.some((p) => p.code === 'SKAFE_LINE_TOO_LONG') && text.problems.some((p) => p.code === 'SKAFE_MALFORMED_RECORD'), 'both kinds of problem occur');
  for (const k of ['in', 'out', 'malformed'] as const) t.equal(raw.counters[k], text.counters[k], `counter ${k}: ${text.counters[k]}`);
});

t.test('file → coalesce → jsonl writes the same bytes with and without the native code', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'audit.log');
  fs.writeFileSync(file, nastyLog());
  const outputs: string[] = [];
  const stats: string[] = [];
  for (const native of ['1', '0']) {
    const out = path.join(dir, `events-${native}.jsonl`);
    const def = path.join(dir, `p-${native}.json`);
    fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: file, chunkSize: 4096, maxLineLength: 300 }, { use: 'coalesce' }, { use: 'jsonl', path: out }] }));
    const env: NodeJS.ProcessEnv = { ...process.env, SKAFE_NATIVE_INTERPRET: native };
    delete env.NODE_OPTIONS;
    const r = spawnSync(skafeBin, ['run', def, '--stats', '--quiet'], { env, encoding: 'utf8' });
    t.equal(r.status, 0, `native ${native}: exit 0`);
    const printed = r.stdout + r.stderr;
    // the counters table, without the elapsed time
    stats.push(printed.split('\n').filter((l) => l.startsWith('stage')).join('\n'));
    outputs.push(fs.readFileSync(out, 'utf8'));
  }
  t.match(stats[0], /stage 1 \(file\)\s+841\s+601\s+0\s+205/, 'every line counted and every bad one reported');
  t.equal(stats[0], stats[1], 'the same counters for every stage');
  t.ok(outputs[0]!.split('\n').length > 400, `events written (${outputs[0]!.split('\n').length - 1})`);
  t.equal(outputs[0], outputs[1], 'byte for byte the same');
});

t.test('an event open across many chunks keeps its records, copied out of their chunks', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'audit.log');
  // event 1 gets a record every 3000 lines: with a long lookahead it stays open across dozens of 4 KB chunks
  let text = '';
  for (let i = 0; i < 12000; i++) {
    if (i % 3000 === 0) text += `type=PATH msg=audit(1700000000.000:1): item=${i / 3000} name="/tmp/f${i}" nametype=NORMAL\n`;
    text += rec(10 + i);
  }
  fs.writeFileSync(file, text);
  const outputs: string[] = [];
  for (const native of ['1', '0']) {
    const out = path.join(dir, `events-${native}.jsonl`);
    const def = path.join(dir, `p-${native}.json`);
    fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: file, chunkSize: 4096 }, { use: 'coalesce', lookahead: 100000, settleMs: 100000 }, { use: 'jsonl', path: out }] }));
    const env: NodeJS.ProcessEnv = { ...process.env, SKAFE_NATIVE_INTERPRET: native };
    delete env.NODE_OPTIONS;
    t.equal(spawnSync(skafeBin, ['run', def, '--quiet'], { env }).status, 0, `native ${native}: exit 0`);
    outputs.push(fs.readFileSync(out, 'utf8'));
  }
  const first = JSON.parse(outputs[0]!.split('\n')[0]!) as { auditd: { records: Array<{ fields: { name: string } }> } };
  t.same(first.auditd.records.map((r) => r.fields.name), ['/tmp/f0', '/tmp/f3000', '/tmp/f6000', '/tmp/f9000'], 'the long-open event has all its records');
  t.equal(outputs[0], outputs[1], 'byte for byte what the text mode writes');
  const r = new RawRecord(Buffer.from('xx' + rec(5) + 'yy'), 2, 2 + rec(5).length - 1, 1300, 1700000000, 5, 5, '1700000000.005:5', undefined);
  const d = r.detach();
  t.ok(d.detached && !r.detached, 'detached: its own bytes');
  t.same(plain(d), plain(r), 'and the same record');
});

t.test('raw mode follows a file across partial lines, rotation and truncation', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'audit.log');
  const out = path.join(dir, 'events.jsonl');
  fs.writeFileSync(file, rec(1));
  const p = await buildPipeline(
    { stages: [{ use: 'file', path: file, follow: true, pollIntervalMs: 20 }, { use: 'coalesce', idleTimeoutMs: 50 }, { use: 'jsonl', path: out }] },
    { log: { info() {}, warn() {}, error() {} } },
  );
  const running = p.run();
  const serials = () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { auditd: { sequence: number } }).auditd.sequence) : []);
  await waitFor(() => serials().length === 1, 10000, 'the first event');
  // a line written in two parts: the first part waits in the reader until its newline comes
  const two = rec(2);
  fs.appendFileSync(file, two.slice(0, 40));
  await sleep(100);
  fs.appendFileSync(file, two.slice(40) + rec(3));
  await waitFor(() => serials().length === 3, 10000, 'the line written in two parts');
  // rotated: what was appended before the rename is read first, then the new file from its start
  fs.appendFileSync(file, rec(4));
  fs.renameSync(file, file + '.1');
  fs.writeFileSync(file, rec(5));
  await waitFor(() => serials().length === 5, 10000, 'across rotation');
  fs.appendFileSync(file, rec(6) + rec(7));
  await waitFor(() => serials().length === 7, 10000, 'appended after rotation');
  // truncated in place (copytruncate), shorter than what was read: read again from the top
  fs.writeFileSync(file, rec(8));
  await waitFor(() => serials().length === 8, 10000, 'after truncation');
  p.stop();
  await running;
  t.same(serials(), [1, 2, 3, 4, 5, 6, 7, 8], 'every event once, in order');
});
