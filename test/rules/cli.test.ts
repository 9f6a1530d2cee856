import t from 'tap';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { repoRoot, skafeBin, fixtures } from '../helpers/env.js';
import { dirWith } from './helpers.js';

const skafe = (...args: string[]) => spawnSync(process.execPath, [skafeBin, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

t.test('rules check: ok set, and a broken one with every error', async (t) => {
  const ok = skafe('rules', 'check', path.join(repoRoot, 'pipelines/rules/example'));
  t.equal(ok.status, 0);
  t.match(ok.stdout, /skipped \[MatchRule\] has no watch, skipping/);
  t.match(ok.stdout, /ok: 5 rules from 1 files/);
  const dir = dirWith({ 'x.rules': '[a]\nwatch = base\naction = bogus\n[b]\nwatch = base\naction = match\nmatch_x = (?<!a)b\n' });
  const bad = skafe('rules', 'check', dir);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /x\.rules:3: \[a\] unknown action "bogus"/);
  t.match(bad.stderr, /x\.rules:7: \[b\] bad perl regex/);
  t.match(bad.stderr, /2 errors/);
});

t.test('rules test: hit counts and --explain', async (t) => {
  const dir = dirWith({ 'r.rules': '[exec]\nwatch = base\naction = match\ntrigger = log\nmatch_key = ^exec$\n[exec.sh]\nwatch = exec\nmatch_comm = ^nomatch$\n' });
  const r = skafe('rules', 'test', dir, fixtures('dev-1', 'audit.log'), '--json');
  t.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.ok(j.events > 400);
  t.ok(j.rules.exec > 10, `exec fired ${j.rules.exec} times`);
  t.equal(j.rules['exec.sh'], 0);
  const ex = skafe('rules', 'test', dir, fixtures('dev-1', 'audit.log'), '--explain', '1795533379.154:1099');
  t.equal(ex.status, 0, ex.stderr);
  t.match(ex.stdout, /✓ {2}pass → log \[exec\]/);
  t.match(ex.stdout, /✗ {2}fail comm=~\/\^nomatch\$\/ had \["workload2\.sh"\] \[exec\.sh\]/);
  const missing = skafe('rules', 'test', dir, fixtures('dev-1', 'audit.log'), '--explain', '1.2:3');
  t.equal(missing.status, 1);
  void execFileSync;
});
