import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fixtures } from '../helpers/env.js';
import { spawnSkafe, collect, tmpdir, readJsonl, waitFor, sleep } from '../helpers/run.js';

t.test('SIGHUP reopens the file (logrotate), no line torn or lost', async (t) => {
  const dir = tmpdir(t);
  const log = path.join(dir, 'audit.log');
  const sample = fs.readFileSync(fixtures('dev-1', 'audit.log'), 'utf8').split('\n');
  // Split at an event boundary: auditd writes an event's records together.
  const idOf = (l: string) => /msg=audit\(([^)]*)\)/.exec(l)?.[1];
  let cut = 1000;
  while (idOf(sample[cut]!) === idOf(sample[cut - 1]!)) cut++;
  fs.writeFileSync(log, sample.slice(0, cut).join('\n') + '\n');
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: 'audit.log', follow: true, pollIntervalMs: 20 }, { use: 'coalesce', idleTimeoutMs: 50 }, { use: 'jsonl', path: 'events.jsonl' }] }));
  const child = spawnSkafe(['run', def]);
  const done = collect(child);
  const out = path.join(dir, 'events.jsonl');
  await waitFor(() => fs.existsSync(out) && fs.statSync(out).size > 0, 10000, 'first events');
  await sleep(300);
  fs.renameSync(out, out + '.1');
  child.kill('SIGHUP');
  await sleep(100);
  fs.appendFileSync(log, sample.slice(cut).join('\n'));
  await waitFor(() => fs.existsSync(out), 10000, 'reopened file');
  await sleep(500);
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 0, r.stderr);
  const a = readJsonl(fs.readFileSync(out + '.1', 'utf8'));
  const b = readJsonl(fs.readFileSync(out, 'utf8'));
  t.ok(a.length > 0 && b.length > 0, `${a.length} lines before rotation, ${b.length} after`);
  const ids = [...a, ...b].map((e) => e.event.id);
  t.equal(new Set(ids).size, ids.length, 'nothing twice');
  const expected = new Set(readJsonl(fs.readFileSync(fixtures('dev-1', 'expected.jsonl'), 'utf8')).map((e) => e.id));
  t.same(new Set(ids), expected, 'nothing lost across the reopen');
});

t.test('an unwritable path fails with a clear error naming it', async (t) => {
  const dir = tmpdir(t);
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: fixtures('dev-1', 'audit.log') }, { use: 'jsonl', path: '/proc/forbidden/x.jsonl' }] }));
  const r = await collect(spawnSkafe(['run', def]));
  t.equal(r.code, 1);
  t.match(r.stderr, /SKAFE_OUTPUT_OPEN: cannot open \/proc\/forbidden\/x\.jsonl/);
});
