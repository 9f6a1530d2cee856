import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buildPipeline } from '../../src/pipeline.js';
import rulesStage, { RULES_RELOAD } from '../../src/transforms/rules.js';
import { StageCounters, type StageContext } from '../../src/stage.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { RuleTree } from '../../src/rules/tree.js';
import { fixtures } from '../helpers/env.js';
import { dirWith, memoryLog } from './helpers.js';

const RULES = [
  '[exec]\nwatch = base\naction = match\ntrigger = log\nmatch_key = ^exec$\n',
  '[exec.bash]\nwatch = exec\nmatch_bin = /bash$\ntrigger = both\n',
  '[root]\nwatch = base\naction = match\nregextype = posix\ntrigger = alert\nmatch_uname = ^ro+t$\nmatch_syscall = ^[[:alpha:]]+$\n',
].join('');

t.test('file → coalesce → rules → jsonl writes exactly the event-log and alert-log lines, in order', async (t) => {
  const rulesdir = dirWith({ 'main.rules': RULES });
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-rules-out-')), 'out.jsonl');
  const def = {
    stages: [
      { use: 'file', path: fixtures('dev-1', 'audit.log') },
      { use: 'coalesce' },
      { use: 'rules', rulesdir, workers: 2 },
      { use: 'jsonl', path: out },
    ],
  };
  const noEngine = path.join(path.dirname(out), 'events.jsonl');
  const p = await buildPipeline(def, { log: memoryLog() });
  await p.run();
  const q = await buildPipeline({ stages: [def.stages[0]!, def.stages[1]!, { use: 'jsonl', path: noEngine }] }, { log: memoryLog() });
  await q.run();
  // The reference: evaluate every event in this thread and build the lines we expect.
  const set = loadRuleSet(rulesdir);
  const tree = new RuleTree(set);
  const expected: string[] = [];
  for (const line of fs.readFileSync(noEngine, 'utf8').trim().split('\n')) {
    const e = JSON.parse(line);
    for (const i of tree.evaluateSync(e)) {
      const n = set.nodes[i]!;
      for (const kind of n.trigger === 'both' ? ['event', 'alert'] : [n.trigger === 'log' ? 'event' : 'alert']) {
        expected.push(`${e.event.id} ${n.name} main.rules ${kind}`);
      }
    }
  }
  const got = fs
    .readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((e) => `${e.event.id} ${e.rule.name} ${e.rule.ruleset} ${e.event.kind}`);
  t.ok(expected.length > 100, `${expected.length} lines expected`);
  t.same(got, expected, 'same lines, same order');
  t.ok(got.some((g) => g.endsWith('exec.bash main.rules alert')) && got.some((g) => g.endsWith('exec.bash main.rules event')), '`both` gives one line in each log');
  t.ok(got.some((g) => / root main\.rules alert$/.test(g)), 'posix rule with alias keys fires');
});

function testContext(log = memoryLog()): StageContext & { log: ReturnType<typeof memoryLog> } {
  const counters = new StageCounters();
  return {
    baseDir: process.cwd(),
    index: 1,
    name: 'stage 2 (rules)',
    counters,
    log,
    signal: new AbortController().signal,
    problem: () => {},
    services: new Map(),
  };
}

t.test('reload under load: nothing lost or evaluated twice; a broken set is refused', async (t) => {
  const v1 = '[v1]\nwatch = base\naction = match\ntrigger = log\nmatch_n = ^[0-9]+$\n';
  const v2 = '[v2]\nwatch = base\naction = match\ntrigger = log\nmatch_n = ^[0-9]+$\n';
  const dir = dirWith({ 'r.rules': v1 });
  const ctx = testContext();
  const stage = (await rulesStage.create({ rulesdir: dir, workers: 2, reload: false }, ctx)) as NodeJS.ReadWriteStream;
  const reload = ctx.services.get(RULES_RELOAD) as () => Promise<boolean>;
  const TOTAL = 200_000;
  const BATCH = 500;
  let sent = 0;
  const source = new Readable({
    objectMode: true,
    highWaterMark: 4,
    read() {
      if (sent >= TOTAL) return this.push(null);
      const batch = [];
      for (let i = 0; i < BATCH; i++) batch.push({ n: sent++, event: { id: String(sent) } });
      this.push(batch);
    },
  });
  const seen: number[] = [];
  const gens = new Set<string>();
  const reloads: boolean[] = [];
  let flips = 0;
  const sink = new Writable({
    objectMode: true,
    highWaterMark: 4,
    write(batch: Array<{ n: number; rule: { name: string } }>, _e, cb) {
      for (const item of batch) {
        seen.push(item.n);
        gens.add(item.rule.name);
      }
      // Flip the rules while events stream: good, broken, good again.
      if (seen.length > TOTAL * 0.2 && flips === 0) {
        flips++;
        fs.writeFileSync(path.join(dir, 'r.rules'), v2);
        void reload().then((ok) => reloads.push(ok));
      } else if (seen.length > TOTAL * 0.5 && flips === 1) {
        flips++;
        fs.writeFileSync(path.join(dir, 'broken.rules'), '[bad]\nwatch = base\naction = explode\n');
        void reload().then((ok) => reloads.push(ok));
      }
      setImmediate(cb);
    },
  });
  await pipeline(source, stage, sink);
  t.equal(seen.length, TOTAL, 'every event came out once');
  let ordered = true;
  for (let i = 0; i < seen.length; i++) if (seen[i] !== i) ordered = false;
  t.ok(ordered, 'in input order, no duplicates');
  t.same([...gens].sort(), ['v1', 'v2'], 'both rule sets ran');
  t.same(reloads, [true, false], 'good reload taken, broken one refused');
  t.match(ctx.log.lines.join('\n'), /reload refused, the previous rules keep running: [\s\S]*unknown action "explode"/);
});
