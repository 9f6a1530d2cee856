import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from '../args.js';
import { isSkafeError, SkafeError } from '../../errors.js';
import { loadRuleSet, formatIssue, type LoadIssue, type RuleSet } from '../../rules/load.js';
import { RuleEngine } from '../../rules/engine.js';
import { StageCounters, type Batch, type Logger, type StageContext } from '../../stage.js';
import fileSource from '../../sources/file.js';
import coalesce from '../../transforms/coalesce.js';

export const summary = 'check a rules directory, or replay an audit log through it (hit counts, --explain EVENT_ID)';

const USAGE = `usage:
  skafe rules check RULESDIR [--scripts DIR]
  skafe rules test RULESDIR LOG [--scripts DIR] [--explain EVENT_ID] [--json]

check    load every *.rules file and report every error (file:line [rule]) and skipped template
test     replay LOG (an audit.log) through the tree: per-rule hit counts;
         --explain EVENT_ID (e.g. 1795533379.154:1099) shows each node's pass/fail for that event
`;

const out = (s: string) => process.stdout.write(s + '\n');
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const green = (s: string) => paint('32', s);
const red = (s: string) => paint('31', s);
const dim = (s: string) => paint('2', s);

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const args = parseArgs(rest, { values: ['scripts', 'explain'], bools: ['json', 'help'], aliases: { scriptsdir: 'scripts', h: 'help' } });
  if (!sub || args.flags.has('help') || (sub !== 'check' && sub !== 'test')) {
    process.stderr.write(USAGE);
    return 2;
  }
  const [dir, log] = args.positional;
  if (!dir || (sub === 'test' && !log)) throw new SkafeError('SKAFE_USAGE', `rules ${sub}: missing ${dir ? 'LOG' : 'RULESDIR'}\n${USAGE}`);
  const scriptsdir = args.flags.get('scripts') as string | undefined;
  let set: RuleSet;
  try {
    set = loadRuleSet(dir, { scriptsdir });
  } catch (e) {
    if (!isSkafeError(e, 'SKAFE_RULES_INVALID')) throw e;
    const errors = (e.details.errors as LoadIssue[] | undefined) ?? [];
    for (const i of errors) process.stderr.write(`${red('error')} ${formatIssue(i)}\n`);
    process.stderr.write(`${errors.length} error${errors.length === 1 ? '' : 's'}: rules not loaded\n`);
    return 1;
  }
  if (sub === 'check') {
    for (const f of set.files) out(dim(`loaded ${f}`));
    for (const s of set.skipped) out(`skipped [${s.name}] ${s.reason} ${dim(`(${s.file}:${s.line})`)}`);
    for (const w of set.warnings) out(`warning ${w}`);
    printTree(set);
    out(green(`ok: ${set.nodes.length} rules from ${set.files.length} files`));
    return 0;
  }
  return replay(set, dir, log!, scriptsdir, args.flags.get('explain') as string | undefined, args.flags.has('json'));
}

function printTree(set: RuleSet, mark?: (i: number) => string): void {
  const walk = (i: number, depth: number) => {
    const n = set.nodes[i]!;
    const what = n.action === 'script' ? `script ${n.script!.name} (${n.script!.lang})` : n.matches.length ? n.matches.map((m) => `${m.key}=~/${m.pattern.pattern}/`).join(' & ') : 'every event';
    out(`${'  '.repeat(depth + 1)}${mark ? mark(i) + ' ' : ''}[${n.name}] ${dim(`${n.trigger ?? 'gate'} · ${what}`)}`);
    for (const w of n.watchers) walk(w, depth + 1);
  };
  out('base');
  for (const r of set.roots) walk(r, 0);
}

const quietLog: Logger = { info() {}, warn() {}, error: (m) => process.stderr.write(`skafe: ${m}\n`) };

function context(name: string, index: number): StageContext {
  const counters = new StageCounters();
  return {
    baseDir: process.cwd(),
    index,
    name,
    counters,
    log: quietLog,
    signal: new AbortController().signal,
    problem: () => void counters.malformed++,
    services: new Map(),
  };
}

async function replay(set: RuleSet, dir: string, log: string, scriptsdir: string | undefined, explain: string | undefined, json: boolean): Promise<number> {
  const engine = await RuleEngine.create({ rulesdir: dir, scriptsdir, workers: 0, log: quietLog, count: () => {} });
  const hitCount = new Array<number>(set.nodes.length).fill(0);
  let events = 0;
  let matched = 0;
  let explained = false;
  const src = await fileSource.create({ path: path.resolve(log) }, context('file', 0));
  const co = await coalesce.create({} as never, context('coalesce', 1));
  const sink = new Writable({
    objectMode: true,
    write(batch: Batch<Record<string, unknown>>, _e, cb) {
      (async () => {
        const { hits } = await engine.evaluate(batch);
        for (const [i, h] of hits.entries()) {
          events++;
          if (h.length) matched++;
          for (const n of h) hitCount[n]!++;
          const ev = batch[i]!;
          if (explain && (ev.event as { id?: string } | undefined)?.id === explain) {
            explained = true;
            const trace = await engine.generation.tree.explain(ev, (node, e) => engine.generation.pools.get(node)!.call(e));
            const byNode = new Map(trace.map((tr) => [tr.node, tr]));
            out(`event ${explain}:`);
            printTree(set, (n) => {
              const tr = byNode.get(n)!;
              if (!tr.reached) return dim('·  not reached');
              if (tr.pass) return green('✓  pass') + (set.nodes[n]!.trigger ? ` → ${set.nodes[n]!.trigger}` : '');
              if (!tr.failed) return red('✗  fail') + ' (script returned false)';
              const f = tr.failed;
              return red('✗  fail') + ` ${f.key}=~/${f.pattern}/ ${f.values.length ? `had ${JSON.stringify(f.values.slice(0, 3))}` : 'key missing'}`;
            });
            out('');
          }
        }
      })().then(() => cb(), cb);
    },
  });
  try {
    await pipeline(src as NodeJS.ReadableStream, co as NodeJS.ReadWriteStream, sink);
  } finally {
    await engine.close();
  }
  if (json) {
    out(JSON.stringify({ events, matched, rules: Object.fromEntries(set.nodes.map((n, i) => [n.name, hitCount[i]])) }));
  } else {
    out(`${events} events, ${matched} fired at least one rule`);
    const w = Math.max(...set.nodes.map((n) => n.name.length), 4);
    out(`  ${'rule'.padEnd(w)}  ${'hits'.padStart(8)}  trigger`);
    for (const [i, n] of set.nodes.entries()) out(`  ${n.name.padEnd(w)}  ${String(hitCount[i]).padStart(8)}  ${n.trigger ?? dim('gate')}`);
  }
  if (explain && !explained) {
    process.stderr.write(`skafe: event ${explain} is not in ${log}\n`);
    return 1;
  }
  return 0;
}
