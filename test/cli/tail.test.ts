import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { skafe, spawnSkafe, collect, tmpdir, readJsonl, waitFor, sleep } from '../helpers/run.js';

const ev = (id: string, exe: string, uid = 'root') => JSON.stringify({ '@timestamp': '2026-01-01T00:00:00.000Z', event: { id }, process: { executable: exe, args: [exe, '-x'] }, user: { name: uid } }) + '\n';

t.test('prints the file; --where filters on dotted paths; --fields picks columns; raw JSON when piped', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'events.jsonl');
  fs.writeFileSync(f, ev('1.000:1', '/usr/bin/ls') + ev('1.000:2', '/usr/bin/cat', 'carol') + 'garbage\n' + ev('1.000:3', '/usr/bin/cat'));
  const all = await skafe(['tail', f]);
  t.equal(all.code, 0);
  t.equal(readJsonl(all.stdout).length, 3);
  t.match(all.stderr, /events\.jsonl:3: not a JSON line/);
  const cats = await skafe(['tail', f, '--where', 'process.executable=cat$', '--where', 'user.name=^root$']);
  t.same(readJsonl(cats.stdout).map((e) => e.event.id), ['1.000:3']);
  const cols = await skafe(['tail', f, '--fields', 'event.id,process.args']);
  t.same(readJsonl(cols.stdout)[0], { 'event.id': '1.000:1', 'process.args': ['/usr/bin/ls', '-x'] });
  const last = await skafe(['tail', f, '-n', '1', '--where', 'process.executable=cat$']);
  t.same(readJsonl(last.stdout).map((e) => e.event.id), ['1.000:3'], '-n counts matching events from the end');
  const pretty = await skafe(['tail', f, '--pretty', '--fields', 'event.id']);
  t.match(pretty.stdout, /\x1b\[36mevent\.id\x1b\[0m=/, 'coloured when asked (or on a TTY)');
});

t.test('-f follows growth and survives rotation', async (t) => {
  const dir = tmpdir(t);
  const f = path.join(dir, 'events.jsonl');
  fs.writeFileSync(f, ev('1.000:1', '/a'));
  const child = spawnSkafe(['tail', '-f', f, '--poll', '20', '--fields', 'event.id']);
  const done = collect(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('1.000:1'), 5000, 'first line');
  fs.appendFileSync(f, ev('1.000:2', '/b'));
  await waitFor(() => out.includes('1.000:2'), 5000, 'appended line');
  fs.renameSync(f, f + '.1');
  fs.appendFileSync(f + '.1', ev('1.000:3', '/c'));
  await sleep(50);
  fs.writeFileSync(f, ev('1.000:4', '/d'));
  await waitFor(() => out.includes('1.000:4'), 5000, 'line in the new file');
  child.kill('SIGINT');
  const r = await done;
  t.equal(r.code, 0);
  t.same(readJsonl(out).map((e) => e['event.id']), ['1.000:1', '1.000:2', '1.000:3', '1.000:4']);
});
