import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fixtures } from '../helpers/env.js';
import { skafe, spawnSkafe, collect, tmpdir, readJsonl, waitFor } from '../helpers/run.js';

const sample = fixtures('dev-1', 'audit.log');
const expectedIds = () => new Set(readJsonl(fs.readFileSync(fixtures('dev-1', 'expected.jsonl'), 'utf8')).map((e) => e.id));

t.test('skafe run: a finite replay exits 0 once every event is written; --stats prints per-stage counters', async (t) => {
  const dir = tmpdir(t);
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: sample }, { use: 'coalesce' }, { use: 'jsonl', path: 'events.jsonl' }] }));
  const r = await skafe(['run', def, '--stats']);
  t.equal(r.code, 0, r.stderr);
  const events = readJsonl(fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8'));
  const ids = events.map((e) => e.event.id);
  t.equal(new Set(ids).size, ids.length, 'no event twice');
  t.same(new Set(ids), expectedIds(), 'every event of the log, and nothing else (libauparse ids, split events merged)');
  t.match(r.stderr, /stage 1 \(file\)\s+2,318\s+2,318\s+0\s+0/, 'stats row for the source');
  t.match(r.stderr, /stage 2 \(coalesce\)\s+2,318\s+\d{3}/, 'stats row for coalesce');
  t.match(r.stderr, /^stage\s+in\s+out\s+dropped\s+malformed/m);
});

t.test('skafe run on stdin: text, ENRICHED, node= and bare forms; malformed lines counted', async (t) => {
  const dir = tmpdir(t);
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'stdin' }, { use: 'coalesce' }, { use: 'stdout' }] }));
  const input = [
    'type=SYSCALL msg=audit(1700000000.001:1): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=10 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true" exe="/usr/bin/true" key="k1"',
    'node=h2 type=SYSCALL msg=audit(1700000000.002:2): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=11 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true" exe="/usr/bin/true" key=(null)\x1dARCH=x86_64 SYSCALL=execve AUID="unset" UID="root" GID="root" EUID="root" SUID="root" FSUID="root" EGID="root" SGID="root" FSGID="root"',
    'audit(1700000000.003:3): pid=12 uid=0 auid=4294967295 ses=4294967295 msg=\'op=x res=success\'',
    'this is not an audit record',
    '',
  ].join('\n');
  const r = await skafe(['run', def], { input });
  t.equal(r.code, 0, r.stderr);
  const events = readJsonl(r.stdout);
  t.same(events.map((e) => e.event.id).sort(), ['1700000000.001:1', '1700000000.002:2', '1700000000.003:3']);
  const e2 = events.find((e) => e.event.id === '1700000000.002:2');
  t.equal(e2.host?.name, 'h2', 'node= becomes host.name');
  t.equal(e2.auditd.data.syscall, 'execve');
  t.match(r.stderr, /<stdin>:4: .*SKAFE_MALFORMED_RECORD/);
  t.match(r.stderr, /1 malformed input line/);
});

t.test('SIGINT and SIGTERM drain in-flight events and exit 0', async (t) => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const dir = tmpdir(t);
    const log = path.join(dir, 'audit.log');
    fs.copyFileSync(sample, log);
    const def = path.join(dir, 'p.json');
    fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: 'audit.log', follow: true }, { use: 'coalesce', idleTimeoutMs: 60000 }, { use: 'jsonl', path: 'out.jsonl' }] }));
    const child = spawnSkafe(['run', def]);
    const done = collect(child);
    // The lookahead completes most events; the last ones stay open (follow mode, long idle timeout) until the drain.
    await waitFor(() => fs.existsSync(path.join(dir, 'out.jsonl')) && fs.readFileSync(path.join(dir, 'out.jsonl'), 'utf8').split('\n').length > 100, 20000, 'events written');
    child.kill(sig);
    const r = await done;
    t.equal(r.code, 0, `${sig}: exit 0 (${r.stderr})`);
    const ids = readJsonl(fs.readFileSync(path.join(dir, 'out.jsonl'), 'utf8')).map((e) => e.event.id);
    t.same(new Set(ids), expectedIds(), `${sig}: the events still open were flushed, none lost`);
    t.equal(ids.length, new Set(ids).size);
  }
});

t.test('SIGHUP never ends skafe run (it means reopen/reload), even without a stage that reopens', async (t) => {
  const dir = tmpdir(t);
  const log = path.join(dir, 'audit.log');
  fs.copyFileSync(sample, log);
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: 'audit.log', follow: true }, { use: 'coalesce' }, { use: 'stdout' }] }));
  const child = spawnSkafe(['run', def]);
  const done = collect(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await waitFor(() => out.split('\n').length > 100, 20000, 'events on stdout');
  child.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(child.exitCode, null, 'still running after SIGHUP');
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 0, r.stderr);
  t.same(new Set(readJsonl(r.stdout).map((e) => e.event.id)), expectedIds(), 'and it drained everything at SIGTERM');
});

t.test('skafe validate checks without running', async (t) => {
  const dir = tmpdir(t);
  const good = path.join(dir, 'good.json');
  fs.writeFileSync(good, JSON.stringify({ stages: [{ use: 'file', path: 'nope.log' }, { use: 'coalesce' }, { use: 'jsonl', path: 'out.jsonl' }] }));
  const r1 = await skafe(['validate', good]);
  t.equal(r1.code, 0, r1.stderr);
  t.notOk(fs.existsSync(path.join(dir, 'out.jsonl')), 'nothing ran');
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ stages: [{ use: 'file', path: 'x' }, { use: 'coalesce', maxOpen: 0 }, { use: 'jsonl', path: 'o' }] }));
  const r2 = await skafe(['validate', bad]);
  t.equal(r2.code, 1);
  t.match(r2.stderr, new RegExp(`${bad}: stage 2 \\(coalesce\\): field "maxOpen" must be >= 1`));
});

t.test('progress on a terminal', async (t) => {
  const dir = tmpdir(t);
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: sample }, { use: 'coalesce' }, { use: 'jsonl', path: 'o.jsonl' }] }));
  // --progress forces the display a TTY would get; the run is short, so slow the sink down via a big chunk count.
  const r = await skafe(['run', def, '--progress']);
  t.equal(r.code, 0);
  t.notMatch(r.stderr, /error/);
});

t.test('usage errors', async (t) => {
  const r = await skafe(['frobnicate']);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown command "frobnicate"/);
  const r2 = await skafe(['run']);
  t.equal(r2.code, 2);
  const r3 = await skafe(['run', '/nonexistent.json']);
  t.equal(r3.code, 1);
  t.match(r3.stderr, /\/nonexistent\.json: cannot read/);
});
