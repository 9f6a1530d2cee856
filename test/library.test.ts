import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { repoRoot } from './helpers/env.js';
import { tmpdir, readJsonl, cleanEnv } from './helpers/run.js';

// Runs the README's library example as a user would: `import … from 'skafe'`.
t.test('the README example works as written', async (t) => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const m = /## Library use[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  t.ok(m, 'README has a library example');
  const dir = tmpdir(t);
  // Resolve 'skafe' to this checkout, as `npm install skafe` would.
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', 'skafe'));
  fs.mkdirSync(path.join(dir, 'pipelines', 'samples'), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, 'pipelines', 'samples', 'audit.log'), path.join(dir, 'pipelines', 'samples', 'audit.log'));
  fs.mkdirSync(path.join(dir, 'out'));
  fs.writeFileSync(path.join(dir, 'example.mjs'), m![1]!);
  execFileSync(process.execPath, ['example.mjs'], { cwd: dir, stdio: 'pipe', env: cleanEnv() });
  const execs = readJsonl(fs.readFileSync(path.join(dir, 'out', 'execs.jsonl'), 'utf8'));
  t.ok(execs.length > 100, `${execs.length} events with an executable`);
  t.ok(execs.every((e) => typeof e.id === 'string' && e.exe.startsWith('/')));
});
