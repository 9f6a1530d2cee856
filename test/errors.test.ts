import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes } from '../src/errors.js';
import { repoRoot } from './helpers/env.js';

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|mjs|js)$/.test(e.name)) out.push(p);
  }
  return out;
}

// fastify's habit: one file declares every code, and a test keeps the two in step.
t.test('every error code used in src/ is declared in src/errors.ts', async (t) => {
  const declared = new Set(Object.keys(ErrorCodes));
  for (const file of walk(path.join(repoRoot, 'src'))) {
    if (file.endsWith('errors.ts')) continue;
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/['"`](SKAFE_[A-Z_]+)['"`]/g)) {
      t.ok(declared.has(m[1]!), `${path.relative(repoRoot, file)} uses ${m[1]}`);
    }
  }
});

t.test('every declared code has a description', async (t) => {
  for (const [code, text] of Object.entries(ErrorCodes)) t.ok(text.length > 10, code);
});
