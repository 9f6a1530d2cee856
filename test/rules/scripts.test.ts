import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { RuleEngine } from '../../src/rules/engine.js';
import { ScriptPool } from '../../src/rules/scripts/pool.js';
import type { ScriptLang } from '../../src/rules/load.js';
import { repoRoot, fixtures, need } from '../helpers/env.js';
import { dirWith, memoryLog } from './helpers.js';

const demoEvent = JSON.parse(fs.readFileSync(fixtures('rules', 'demo-event.json'), 'utf8'));
const lsEvent = { ...demoEvent, user: { id: '1000', name: 'bob' }, process: { executable: '/usr/bin/ls' } };

t.test('the demo rules with tailcheck in Ruby, Python and JavaScript', async (t) => {
  const dirs: Array<[string, string]> = [
    ['ruby', path.join(repoRoot, 'pipelines/rules/demo')],
    ['python3', fixtures('rules', 'tailcheck-py')],
    ['node', fixtures('rules', 'tailcheck-js')],
  ];
  for (const [tool, scriptsdir] of dirs) {
    if (!need(t as never, { tool })) continue;
    const log = memoryLog();
    const engine = await RuleEngine.create({ rulesdir: path.join(repoRoot, 'pipelines/rules/demo'), scriptsdir, workers: 1, log, count: () => {} });
    const { gen, hits } = await engine.evaluate([demoEvent, lsEvent]);
    t.same(hits.map((h) => h.map((i) => gen.set.nodes[i]!.name)), [['catchall', 'rootactivity', 'tailsript'], ['catchall']], `${tool}: demo outcome`);
    await engine.close();
  }
});

const counts = () => {
  const c: Record<string, number> = {};
  return { c, count: (n: string, k = 1) => void (c[n] = (c[n] ?? 0) + k) };
};

const bad: Record<ScriptLang, { ext: string; tool: string; throws: string; hangs: string; dies: string; prints: string }> = {
  python: {
    ext: 'py',
    tool: 'python3',
    throws: 'def check(e):\n    if e.get("n") == 1:\n        raise ValueError("boom")\n    return True\n',
    hangs: 'import time\ndef check(e):\n    if e.get("n") == 1:\n        while True: time.sleep(1)\n    return True\n',
    dies: 'import os\ndef check(e):\n    if e.get("n") == 1:\n        os._exit(3)\n    return True\n',
    prints: 'def check(e):\n    print("noise on stdout")\n    skafe.log("hello from python")\n    return True\n',
  },
  ruby: {
    ext: 'rb',
    tool: 'ruby',
    throws: 'def check(e)\n  raise "boom" if e["n"] == 1\n  true\nend\n',
    hangs: 'def check(e)\n  sleep 1000 if e["n"] == 1\n  true\nend\n',
    dies: 'def check(e)\n  Process.exit!(3) if e["n"] == 1\n  true\nend\n',
    prints: 'def check(e)\n  puts "noise on stdout"\n  Skafe.log("hello from ruby")\n  true\nend\n',
  },
  js: {
    ext: 'mjs',
    tool: 'node',
    throws: 'export function check(e) { if (e.n === 1) throw new Error("boom"); return true; }\n',
    hangs: 'export function check(e) { if (e.n === 1) for (;;) {} return true; }\n',
    dies: 'export function check(e) { if (e.n === 1) process.exit(3); return true; }\n',
    prints: 'export async function check(e) { console.log("noise"); skafe.log("hello from js"); return true; }\n',
  },
};

for (const [lang, s] of Object.entries(bad) as Array<[ScriptLang, (typeof bad)[ScriptLang]]>) {
  t.test(`${lang}: throw, hang and death are "no match", counted, logged once; the pool recovers`, async (t) => {
    if (!need(t as never, { tool: s.tool })) return;
    const dir = dirWith({ [`throws.${s.ext}`]: s.throws, [`hangs.${s.ext}`]: s.hangs, [`dies.${s.ext}`]: s.dies, [`prints.${s.ext}`]: s.prints });
    const events = [0, 1, 2, 1, 3, 4].map((n) => ({ n }));
    for (const kind of ['throws', 'hangs', 'dies'] as const) {
      const log = memoryLog();
      const { c, count } = counts();
      const pool = new ScriptPool({ name: kind, file: path.join(dir, `${kind}.${s.ext}`), lang }, { size: 2, timeoutMs: 400, log, count });
      await pool.start();
      const results = await Promise.all(events.map((e) => pool.call(e)));
      t.same(results, [true, false, true, false, true, true], `${kind}: only the bad events fail`);
      if (kind === 'hangs') t.equal(c.scriptTimeouts, 2, 'two timeouts');
      else t.equal(c.scriptErrors, 2, 'two errors counted');
      if (kind !== 'throws') t.ok((c.scriptRestarts ?? 0) >= 1, 'interpreter replaced');
      t.equal(log.lines.filter((l) => l.startsWith('error')).length, 1, `${kind}: logged once: ${log.lines.find((l) => l.startsWith('error'))}`);
      // Still works afterwards.
      t.same(await Promise.all([pool.call({ n: 9 }), pool.call({ n: 9 })]), [true, true], `${kind}: pool recovered`);
      await pool.close();
    }
    const log = memoryLog();
    const pool = new ScriptPool({ name: 'prints', file: path.join(dir, `prints.${s.ext}`), lang }, { size: 1, timeoutMs: 2000, log, count: () => {} });
    await pool.start();
    t.equal(await pool.call({}), true, 'stdout output from a script does not break the protocol');
    t.match(log.lines.join('\n'), /hello from/, 'skafe.log reaches the server log');
    await pool.close();
  });
}

t.test('a script that fails to load is refused at start', async (t) => {
  const dir = dirWith({ 'broken.py': 'def check(e)\n  return True\n', 'nocheck.mjs': 'export const x = 1;\n' });
  const mk = (file: string, lang: ScriptLang) => new ScriptPool({ name: 'x', file: path.join(dir, file), lang }, { size: 1, timeoutMs: 1000, log: memoryLog(), count: () => {} });
  if (need(t as never, { tool: 'python3' })) await t.rejects(mk('broken.py', 'python').start(), /failed to load: SyntaxError/);
  await t.rejects(mk('nocheck.mjs', 'js').start(), /no check\(event\)/);
});

t.test('fetchFile: clear error without an agent link, bytes and sha256 with one', async (t) => {
  if (!need(t as never, { tool: 'python3' })) return;
  const dir = dirWith({
    'f.py': 'def check(e):\n    try:\n        f = skafe.fetch_file(e["p"])\n    except Exception as x:\n        skafe.log("ERR " + str(x))\n        return False\n    skafe.log("GOT %d %s" % (len(f["bytes"]), f["sha256"]))\n    return f["bytes"] == b"hello"\n',
  });
  const spec = { name: 'f', file: path.join(dir, 'f.py'), lang: 'python' as const };
  const log = memoryLog();
  const none = new ScriptPool(spec, { size: 1, timeoutMs: 2000, log, count: () => {}, fetchFile: undefined });
  await none.start();
  t.equal(await none.call({ p: '/bin/true' }), false);
  t.match(log.lines.join('\n'), /ERR fetchFile: not connected/);
  await none.close();
  const log2 = memoryLog();
  let asked: unknown;
  const withLink = new ScriptPool(spec, {
    size: 1,
    timeoutMs: 2000,
    log: log2,
    count: () => {},
    fetchFile: async (req) => {
      asked = req;
      return { bytes: Buffer.from('hello'), sha256: '' };
    },
  });
  await withLink.start();
  t.equal(await withLink.call({ p: '/usr/bin/tail' }), true);
  t.same(asked, { path: '/usr/bin/tail', event: { p: '/usr/bin/tail' } }, 'the request carries the path and the event');
  t.match(log2.lines.join('\n'), /GOT 5 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/);
  await withLink.close();
});
