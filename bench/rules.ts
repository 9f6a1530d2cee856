// npm run bench (rules part), issue 5's targets: 100 match rules (perl and
// posix, depth 3, dotted and alias keys) over the dev-1 corpus replayed many
// times, events/s with 1 and 2 rule workers, as a ratio to the same pipeline
// without the rule stage; then a Python script rule with a pool of 4.
//
// The pipelines are built from definitions as `skafe run` builds them, so the
// stages negotiate encoded batches as in production (coalesce serializes in
// its workers; the rule workers take that JSON text and build the output
// lines): file (the replayed log) → coalesce → [rules] → sink. The sink is
// BENCH_SINK: `count` (default) counts the items and drops them, so the
// figures are the stages' own cost; `jsonl` writes them to a file on tmpfs
// (seven lines per event with rules, so the sink's writing then weighs in).
// The configurations run interleaved, BENCH_ROUNDS times; each round's ratios
// come from runs seconds apart: the machine is shared, absolute figures
// drift, ratios within a round much less.
//
// Also reported with BENCH_SINK=jsonl, not a target: the server's routing
// shape, rules → fanout → filter on event.kind → two jsonl sinks, where the
// rule stage emits objects (fanout does not take encoded batches).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { buildPipeline, type PipelineDefinition } from '../src/pipeline.js';
import { stages as registry } from '../src/registry.js';
import { defineStage } from '../src/stage.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const times = Number(process.env.BENCH_TIMES ?? 40);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const quiet = { info() {}, warn() {}, error() {} };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-rules-'));

/** The corpus `n` times over, serials shifted each time so coalesce keeps every event apart. */
function replayedLog(n: number): string {
  const lines = fs.readFileSync(path.join(root, 'test/fixtures/dev-1/audit.log'), 'utf8').trim().split('\n');
  const file = path.join(tmp, `audit-${n}.log`);
  const fd = fs.openSync(file, 'w');
  for (let k = 0; k < n; k++) {
    const shift = (k + 1) * 1_000_000;
    let text = '';
    for (const l of lines) text += l.replace(/audit\((\d+\.\d+):(\d+)\)/, (_m, t: string, s: string) => `audit(${t}:${Number(s) + shift})`) + '\n';
    fs.writeSync(fd, text);
  }
  fs.closeSync(fd);
  return file;
}

function rulesDir(): string {
  const dir = path.join(tmp, 'rules');
  fs.mkdirSync(dir);
  const keys = ['process.executable', 'bin', 'uname', 'user.name', 'syscall', 'auditd.data.syscall', 'comm', 'key', 'cwd', 'process.args'];
  let text = '';
  for (let i = 0; i < 100; i++) {
    const depth = i % 3;
    const name = `r${i}`;
    const watch = depth === 0 ? 'base' : `r${i - 1}`;
    const type = i % 2 ? 'posix' : 'perl';
    const k = keys[i % keys.length]!;
    const re = type === 'posix' ? `^[[:alnum:]/_.-]*${'abcdefghijklmnopqrstuvwxyz'[i % 26]}` : `(?:^|/)\\w*${'abcdefghijklmnopqrstuvwxyz'[i % 26]}\\w*$`;
    text += `[${name}]\nwatch = ${watch}\naction = match\nregextype = ${type}\ntrigger = ${i % 7 ? 'log' : 'both'}\nmatch_${k} = ${re}\n`;
  }
  fs.writeFileSync(path.join(dir, 'bench.rules'), text);
  return dir;
}

// jsonl fsyncs when it ends, which /dev/null refuses: a real file, in memory where there is /dev/shm.
const outDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'skafe-bench-out-'));
const outFile = path.join(outDir, 'out.jsonl');
const sinkKind = process.env.BENCH_SINK ?? 'count';
// A sink that takes encoded batches and drops every item: what the stages cost without the writing.
registry['bench-count'] ??= defineStage({
  kind: 'sink',
  use: 'bench-count',
  description: 'counts and drops',
  schema: { type: 'object' },
  acceptsEncoded: true,
  create: (_o, ctx) =>
    new Writable({
      objectMode: true,
      highWaterMark: 8,
      write(b: unknown[], _e, cb) {
        ctx.counters.in += b.length;
        cb();
      },
    }),
});
const sink = sinkKind === 'jsonl' ? { use: 'jsonl', path: outFile } : { use: 'bench-count' };

/** Runs one pipeline; events/s counted at coalesce's output, from start to the sink's flush. */
async function measure(label: string, def: PipelineDefinition): Promise<number> {
  const p = await buildPipeline(def, { log: quiet, baseDir: tmp });
  const start = process.hrtime.bigint();
  await p.run();
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  const events = p.stages.find((st) => st.use === 'coalesce')!.counters.out;
  const sinks = p.stages.filter((st) => st.use === 'jsonl' || st.use === 'bench-count');
  const lines = sinks.reduce((n, st) => n + st.counters.in, 0);
  const rate = events / s;
  fs.rmSync(outFile, { force: true });
  console.log(`  ${label.padEnd(46)} ${events} events in ${s.toFixed(2)} s = ${String(Math.round(rate)).padStart(6)} events/s (${lines} lines out)`);
  return rate;
}

const log = replayedLog(times);
const dir = rulesDir();
const head = [{ use: 'file', path: log }, { use: 'coalesce' }];
const rules = (workers: number) => ({ use: 'rules', rulesdir: dir, workers, reload: false });
const route = {
  use: 'fanout',
  branches: [
    [{ use: 'filter', where: { 'event.kind': '^event$' } }, sink],
    [{ use: 'filter', where: { 'event.kind': '^alert$' } }, sink],
  ],
};

const fmt = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))} … ${f(Math.max(...xs))}`;
const cost1: number[] = [];
const cost2: number[] = [];
const scale: number[] = [];
const routed: number[] = [];
for (let r = 1; r <= rounds; r++) {
  console.log(`round ${r}/${rounds}`);
  const base = await measure('replay only: file → coalesce → jsonl', { stages: [...head, sink] });
  const w1 = await measure('+ rules, 100 match rules, 1 worker', { stages: [...head, rules(1), sink] });
  const w2 = await measure('+ rules, 100 match rules, 2 workers', { stages: [...head, rules(2), sink] });
  const f2 = sinkKind === 'jsonl' ? await measure('(+ rules, 2 workers → fanout/filter, objects)', { stages: [...head, rules(2), route] as never }) : NaN;
  cost1.push(1 - w1 / base);
  cost2.push(1 - w2 / base);
  scale.push(w2 / w1);
  routed.push(1 - f2 / base);
  console.log(
    `  rule stage cost: 1 worker ${(100 * (1 - w1 / base)).toFixed(0)}%, 2 workers ${(100 * (1 - w2 / base)).toFixed(0)}% of replay throughput; 2 workers / 1 worker = ${(w2 / w1).toFixed(2)}×`,
  );
}
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
console.log(`rule stage cost over ${rounds} rounds: 1 worker ${fmt(cost1, pct)}, 2 workers ${fmt(cost2, pct)} (target ≤ 50%)`);
console.log(`2 workers / 1 worker: ${fmt(scale, (x) => `${x.toFixed(2)}×`)} (target ≥ 1.6×)`);
if (sinkKind === 'jsonl') console.log(`with fanout/filter routing (objects), 2 workers: cost ${fmt(routed, pct)}`);

const pyDir = path.join(tmp, 'py');
fs.mkdirSync(pyDir);
fs.writeFileSync(path.join(pyDir, 'py.rules'), '[tail]\nwatch = base\naction = script\ntrigger = log\nscript = tailcheck\n');
fs.copyFileSync(path.join(root, 'test/fixtures/rules/tailcheck-py/tailcheck.py'), path.join(pyDir, 'tailcheck.py'));
const pyLog = replayedLog(Math.max(4, Math.round(times / 4)));
const py: number[] = [];
for (let r = 1; r <= rounds; r++) {
  py.push(await measure(`+ rules, Python script rule, pool of 4 (${r}/${rounds})`, { stages: [{ use: 'file', path: pyLog }, head[1]!, { use: 'rules', rulesdir: pyDir, scriptpool: 4, reload: false }, sink] }));
}
console.log(`Python script rule, pool of 4: ${fmt(py, (x) => `${Math.round(x)} events/s`)} (target ≥ 5000)`);
fs.rmSync(tmp, { recursive: true, force: true });
fs.rmSync(outDir, { recursive: true, force: true });
