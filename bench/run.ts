// npm run bench [-- NAME…]: every benchmark, or the named ones, one after the
// other (the machine has 2 cores: never two at once). Each prints its figures
// as ratios against a peer measured in the same run. Each runs under the
// launcher's V8 flags: the benches that measure stages in their own process
// (rules) then measure what `skafe server` runs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launcherFlags } from './launcher-flags.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const all = ['replay', 'rules', 'kernel-exec', 'delivery'];
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : all;
let failed = 0;
for (const name of wanted) {
  const file = path.join(here, `${name}.js`);
  if (!fs.existsSync(file)) {
    console.log(`== ${name}: no such benchmark (have: ${all.join(', ')})`);
    failed++;
    continue;
  }
  console.log(`\n== ${name}`);
  const r = spawnSync(process.execPath, [...launcherFlags(), file], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`== ${name}: failed (exit ${r.status})`);
    failed++;
  }
}
process.exitCode = failed ? 1 : 0;
