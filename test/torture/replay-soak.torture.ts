// npm run torture: a million-record replay through the real launcher, checked
// for conservation (every event once) and for bounded memory, with and without
// worker threads. Minutes, not seconds: not part of npm test.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildLog } from '../../bench/replay.js';
import { skafeBin } from '../helpers/env.js';
import { tmpdir, cleanEnv } from '../helpers/run.js';

const RECORDS = Number(process.env.SKAFE_SOAK_RECORDS ?? 1_000_000);

for (const workers of [0, 2]) {
  t.test(`replay of ${RECORDS} records, workers=${workers}: every event once, peak RSS stays bounded (< 256 MB)`, async (t) => {
    const dir = tmpdir(t);
    const log = path.join(dir, 'audit.log');
    buildLog(log, RECORDS);
    // The events the log holds: every distinct msg=audit(…) id.
    const ids = new Set<string>();
    for (const m of fs.readFileSync(log, 'utf8').matchAll(/msg=audit\(([^)]*)\)/g)) ids.add(m[1]!);
    const out = path.join(dir, 'events.jsonl');
    const def = path.join(dir, 'p.json');
    fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: log }, { use: 'coalesce', workers }, { use: 'jsonl', path: out }] }));
    // env -u: tap's process hooks must not ride along into the measured process.
    const r = spawnSync('env', ['-u', 'NODE_OPTIONS', '/usr/bin/time', '-f', '@@RSS %M', process.execPath, skafeBin, 'run', def], { env: cleanEnv(), encoding: 'utf8', maxBuffer: 1 << 26 });
    t.equal(r.status, 0, r.stderr);
    const rss = Number(/@@RSS (\d+)/.exec(r.stderr)?.[1]) / 1024;
    t.ok(rss < 256, `peak RSS ${rss.toFixed(0)} MB`);
    const seen = new Set<string>();
    let dup = 0;
    for (const line of fs.readFileSync(out, 'utf8').split('\n')) {
      if (!line) continue;
      const id = /"event":\{"id":"([^"]+)"/.exec(line)?.[1];
      if (!id) continue;
      if (seen.has(id)) dup++;
      seen.add(id);
    }
    t.equal(dup, 0, 'no event twice');
    t.equal(seen.size, ids.size, `${ids.size} events, none lost`);
  });
}
