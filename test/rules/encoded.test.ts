// The rule stage's fast paths give the same output as the plain one: encoded
// (JSON text) input as object input, output lines built in the match workers
// (encoded output) as objects serialized by the sink, with and without worker
// threads and script rules.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buildPipeline } from '../../src/pipeline.js';
import rulesStage from '../../src/transforms/rules.js';
import { StageCounters, MAX_BATCH, encodedBytes, isEncoded, markEncoded, markEncodedBytes, setBufferOwner, setRecycle, type StageContext } from '../../src/stage.js';
import { projectJson, projectionFor } from '../../src/rules/projection.js';
import { NativeProjector } from '../../src/rules/native-projection.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { RuleTree } from '../../src/rules/tree.js';
import { ALIASES } from '../../src/rules/aliases.js';
import { compileKeyPath, keyValues } from '../../src/rules/keypath.js';
import { assembleLines, hitItems, hitLines, kindSplice, LineBytesBuilder, outputNodes, planLines, type LinePlan } from '../../src/rules/output.js';
import { ScriptPool } from '../../src/rules/scripts/pool.js';
import { getRelease, setRelease } from '../../src/link/services.js';
import { fixtures, need } from '../helpers/env.js';
import { dirWith, memoryLog } from './helpers.js';

const RULES = [
  '[exec]\nwatch = base\naction = match\ntrigger = log\nmatch_key = ^exec$\n',
  '[exec.bash]\nwatch = exec\nmatch_bin = /bash$\ntrigger = both\n',
  '[gate]\nwatch = exec\naction = match\nmatch_uname = .\n',
  '[gated]\nwatch = gate\naction = match\ntrigger = alert\nmatch_syscall = ^[a-z]+$\n',
  '[root]\nwatch = base\naction = match\nregextype = posix\ntrigger = alert\nmatch_uname = ^ro+t$\nmatch_syscall = ^[[:alpha:]]+$\n',
  '[tail]\nwatch = base\naction = script\ntrigger = both\nscript = tailcheck\n',
].join('');

// Events that take the unusual turns of the output code: their own `rule`
// (object, string, null, before `event`), no `event`, a string `event`, an
// existing event.kind, text that needs escaping, integer-like keys, flattened keys.
const EDGE: Array<Record<string, unknown>> = [
  { tags: ['exec'], process: { executable: '/bin/bash' }, rule: { id: 'r-1', name: 'theirs' }, event: { id: 'x1' } },
  { rule: 'str', tags: ['exec'], event: { id: 'x2' }, user: { name: 'root' }, auditd: { data: { syscall: 'execve' } } },
  { tags: ['exec'], process: { executable: '/usr/bin/tail' } },
  { event: 'weird', tags: ['exec'] },
  { tags: ['exec'], event: { kind: 'alert', id: 'x5' }, msg: 'quote " backslash \\ nul \u0000 lone \ud800 emoji 😀 line\nbreak \u2028' },
  { rule: null, tags: ['exec'], event: { id: 'x6' }, user: { name: 'root' }, auditd: { data: { syscall: 'open' } } },
  { tags: ['exec'], event: { id: 'x7' }, note: '\u0000skafe-rule-\u0000 "\\u0000skafe-kind-\\u0000"' },
  { 'process.executable': '/bin/bash', tags: ['exec'], event: { id: 'x8' } },
  { 2: 'two', tags: ['exec'], event: { 1: 'one', id: 'x9' }, 1: 'one' },
  { tags: ['other'], event: { id: 'nohit' } },
  { tags: ['exec'], event: null, process: { executable: '/usr/bin/tail' } },
  // Texts the cutting (kindSplice) must read right: quotes, backslashes and braces in strings, nesting before `event`.
  { '@timestamp': 'x\\"event\\":{"kind"\\', event: { id: 'a"b\\', kind: { nested: 'kind' } }, tags: ['exec'] },
  { event: {}, tags: ['exec'] },
  { big: { event: { kind: 'no' } }, arr: [1, '}', { a: ']' }, true, null, -1.5e-7], event: { z: [{ kind: 1 }], kind: 'x', after: 2 }, tags: ['exec'] },
  { tags: ['exec'], '': 'empty key', 'a\\': 'b', event: { '': 1, 'kind\\': 2 } },
  { event: [1, 2], tags: ['exec'] },
];

// The replay's events as coalesce writes them (one JSON text per line), plus the edge cases.
const eventsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-rules-enc-')), 'events.jsonl');
const built = await buildPipeline({ stages: [{ use: 'file', path: fixtures('dev-1', 'audit.log') }, { use: 'coalesce' }, { use: 'jsonl', path: eventsFile }] }, { log: memoryLog() });
await built.run();
const texts = fs.readFileSync(eventsFile, 'utf8').trim().split('\n');
for (let k = 0; k < EDGE.length; k++) texts.splice(k * 37, 0, JSON.stringify(EDGE[k]));
const objects = texts.map((l) => JSON.parse(l) as Record<string, unknown>);

const rulesdir = dirWith({ 'main.rules': RULES });
const scriptsdir = fixtures('rules', 'tailcheck-js');
// Without the script rule: the match workers read events through a projection (src/rules/projection.ts).
const matchOnlyDir = dirWith({ 'main.rules': RULES.slice(0, RULES.indexOf('[tail]')) + '[flat]\nwatch = base\naction = match\ntrigger = log\nmatch_process.executable = bash\nmatch_event.1 = one\n' });

/** The lines the stage must write, computed here without the stage's output code. */
async function expectedLines(dir = rulesdir): Promise<string[]> {
  const set = loadRuleSet(dir, { scriptsdir });
  const tree = new RuleTree(set);
  const tail = (e: any) => {
    const exe = e.process?.executable ?? e.bin;
    return exe != null && String(exe).split('/').pop() === 'tail';
  };
  const out: string[] = [];
  for (const e of objects) {
    for (const i of await tree.evaluate(e, async (_n, ev) => tail(ev))) {
      const n = set.nodes[i]!;
      const rule = { ...(e.rule as object), name: n.name, ruleset: 'main.rules' };
      for (const kind of n.trigger === 'both' ? ['event', 'alert'] : [n.trigger === 'log' ? 'event' : 'alert']) {
        out.push(JSON.stringify({ ...e, rule, event: { ...(e.event as object), kind } }));
      }
    }
  }
  return out;
}

type Out = 'objects' | 'encoded' | 'bytes';

function context(out: Out | boolean): StageContext {
  const o: Out = out === true ? 'encoded' : out === false ? 'objects' : out;
  // As the pipeline sets them before a sink that takes both (jsonl).
  const counters = new StageCounters();
  // problem() counts as the pipeline's does
  return { baseDir: process.cwd(), index: 2, name: 'rules', counters, log: memoryLog(), signal: new AbortController().signal, problem: () => void counters.malformed++, services: new Map(), encodedOutput: o !== 'objects', encodedBytesOutput: o === 'bytes' };
}

const utf8 = new TextEncoder();

/** Runs the stage on the events in batches of `size`; returns each output item as JSON text. */
async function runStage(workers: number, encodedIn: boolean | 'bytes', out: Out, size: number, input = texts, dir = rulesdir) {
  const ctx = context(out);
  const stage = (await rulesStage.create({ rulesdir: dir, scriptsdir, workers, reload: false }, ctx)) as NodeJS.ReadWriteStream;
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < input.length; i += size) {
        const part = input.slice(i, i + size);
        // bytes as coalesce's workers hand them: JSON lines, sometimes a view into a larger buffer
        if (encodedIn === 'bytes') {
          const b = utf8.encode(part.join('\n') + '\n');
          yield markEncodedBytes(i % (2 * size) === 0 ? b : Buffer.concat([b, Buffer.from('tail')]).subarray(0, b.length), part.length);
        } else yield encodedIn ? markEncoded(part) : objects.slice(i, i + size);
      }
    })(),
    { objectMode: true },
  );
  const lines: string[] = [];
  let wrongKind = 0;
  let tooBig = 0;
  const sink = new Writable({
    objectMode: true,
    write(b: unknown[], _e, cb) {
      if (b.length > MAX_BATCH) tooBig++;
      const bytes = encodedBytes(b);
      if ((bytes !== undefined) !== (out === 'bytes') || isEncoded(b) !== (out === 'encoded')) wrongKind++;
      if (bytes) {
        const text = Buffer.from(bytes).toString('utf8');
        const got = text === '' ? [] : text.slice(0, -1).split('\n');
        if (got.length !== b.length || (text !== '' && !text.endsWith('\n'))) wrongKind++;
        lines.push(...got);
      } else for (const x of b) lines.push(out === 'encoded' ? (x as string) : JSON.stringify(x));
      cb();
    },
  });
  await pipeline(source, stage, sink);
  return { lines, matched: ctx.counters.extra.matched ?? 0, wrongKind, tooBig, counters: ctx.counters };
}

t.test('encoded or object input, encoded or object output, in-thread or in workers: the same lines', async (t) => {
  const want = await expectedLines();
  t.ok(want.length > 500, `${want.length} lines expected`);
  let matched = -1;
  for (const workers of [0, 2]) {
    for (const encodedIn of [false, true]) {
      for (const out of ['objects', 'encoded', 'bytes'] as const) {
        const label = `workers ${workers}, ${encodedIn ? 'encoded' : 'object'} in, ${out} out`;
        const got = await runStage(workers, encodedIn, out, encodedIn ? 200 : 97);
        t.equal(got.wrongKind, 0, `${label}: output batches are ${out}, one line per item`);
        t.equal(got.tooBig, 0, `${label}: output batches hold at most MAX_BATCH items`);
        t.equal(got.counters.out, got.lines.length, `${label}: counters.out counts the items`);
        t.equal(got.counters.in, texts.length, `${label}: counters.in counts the events`);
        t.equal(got.lines.length, want.length, `${label}: as many lines`);
        const firstDiff = got.lines.findIndex((l, i) => l !== want[i]);
        t.equal(firstDiff, -1, `${label}: identical lines in order${firstDiff >= 0 ? ` (first difference at line ${firstDiff}: ${want[firstDiff]!.slice(0, 160)}…)` : ''}`);
        if (matched < 0) matched = got.matched;
        t.equal(got.matched, matched, `${label}: same matched count`);
      }
    }
  }
  // JSON text not as JSON.stringify lays it out cannot be cut: it is serialized again, with the same result.
  const prettyText = objects.map((o) => JSON.stringify(o, null, 1));
  t.same((await runStage(2, true, 'encoded', 200, prettyText)).lines, want, 'pretty-printed JSON text in: the same lines');
  t.same((await runStage(0, true, 'bytes', 200, prettyText)).lines, want, 'pretty-printed JSON text in, bytes out: the same lines');
});

t.test('match rules only (events read through a projection): every input form, every output form, the same lines', async (t) => {
  const want = await expectedLines(matchOnlyDir);
  t.ok(want.length > 500, `${want.length} lines expected`);
  for (const workers of [0, 2]) {
    for (const input of [false, true, 'bytes'] as const) {
      for (const out of ['objects', 'encoded', 'bytes'] as const) {
        const label = `workers ${workers}, ${input === 'bytes' ? 'bytes' : input ? 'encoded' : 'object'} in, ${out} out`;
        const got = await runStage(workers, input, out, 200, texts, matchOnlyDir);
        t.equal(got.wrongKind, 0, `${label}: output batches are ${out}`);
        t.equal(got.counters.in, texts.length, `${label}: counters.in counts the events`);
        const firstDiff = got.lines.length === want.length ? got.lines.findIndex((l, i) => l !== want[i]) : 0;
        t.equal(firstDiff, -1, `${label}: identical lines in order${firstDiff >= 0 ? ` (first difference at line ${firstDiff})` : ''}`);
      }
    }
  }
  const prettyText = objects.map((o) => JSON.stringify(o, null, 1));
  t.same((await runStage(2, true, 'bytes', 200, prettyText, matchOnlyDir)).lines, want, 'pretty-printed JSON text in (no projection): the same lines');
  // Text out from workers goes through JSON-lines bytes: text with newlines in it cannot, and stays text.
  t.same((await runStage(2, true, 'encoded', 200, prettyText, matchOnlyDir)).lines, want, 'pretty-printed JSON text in, text out: the same lines');
});

t.test('an event that is not JSON: counted and skipped, every other event comes out (text and bytes in, in-thread and in workers)', async (t) => {
  const want = await expectedLines(matchOnlyDir);
  const broken = [...texts.slice(0, 150), '{"process":{"executable":"/bin/bash"', 'not json', ...texts.slice(150)];
  for (const workers of [0, 2]) {
    for (const input of [true, 'bytes'] as const) {
      for (const out of ['encoded', 'bytes'] as const) {
        const label = `workers ${workers}, ${input === 'bytes' ? 'bytes' : 'encoded'} in, ${out} out`;
        const got = await runStage(workers, input, out, 200, broken, matchOnlyDir);
        t.equal(got.counters.malformed, 2, `${label}: both bad lines counted as malformed`);
        t.same(got.lines, want, `${label}: the lines of every other event, in order`);
      }
    }
  }
});

t.test('a projection yields what the whole event yields, for every alias and dotted key', async (t) => {
  const keys = [
    ...Object.entries(ALIASES).map(([k, v]) => compileKeyPath(k, [...v])),
    ...['process.args', 'process.args.0', 'process.args.1', 'auditd.paths.name', 'auditd.paths.1.name', 'auditd.data.a0', 'process.executable', 'event.id', 'event.1', 'auditd.records.type', 'auditd.records.fields.name', 'nothing.here', 'user', 'rule.name', '', '__proto__.x', 'a\\'].map((k) => compileKeyPath(k, [k])),
  ];
  const projection = projectionFor(keys, ['rule', 'event']);
  const extra = [
    { 'process.executable': '/x', process: { name: 'y' } },
    { process: [{ executable: 'a' }, { executable: 1 }, [{ executable: true }]], auditd: { paths: [{ name: 'p0' }, { name: ['p1', null] }] } },
    { __proto__: { x: 'polluted?' }, 'a\\': 'backslash key', event: { 1: 'one' } },
    { process: { args: 'not an array' }, user: 'string' },
  ].map((o) => JSON.parse(JSON.stringify(o)));
  let checked = 0;
  let disagree = 0;
  let fallback = 0;
  // a "__proto__" key stays a key (an object literal cannot write one, so as text)
  const protoText = '{"__proto__":{"x":"own key"},"event":{"id":"p"}}';
  t.same(keyValues(projectJson(protoText, projection), compileKeyPath('__proto__.x', ['__proto__.x'])), ['own key'], '__proto__ is an ordinary key');
  for (const text of [...texts, ...extra.map((o) => JSON.stringify(o)), protoText]) {
    const whole = JSON.parse(text);
    const part = projectJson(text, projection);
    if (part === undefined) {
      fallback++;
      continue;
    }
    for (const kp of keys) {
      checked++;
      if (JSON.stringify(keyValues(part, kp)) !== JSON.stringify(keyValues(whole, kp))) {
        if (disagree++ < 3) t.comment(`${kp.key}: ${text.slice(0, 200)}`);
      }
    }
  }
  t.equal(fallback, 0, 'every JSON.stringify text projects');
  t.ok(checked > 10000, `${checked} checks`);
  t.equal(disagree, 0, 'no disagreement');
  t.equal(projectJson('{ "a": 1 }', projection), undefined, 'whitespace: not projected (the caller parses it whole)');
  t.equal(projectJson('{"process":{"executable":"x"', projection), undefined, 'truncated: not projected');
  t.equal(projectJson('{"a":1}x', projection), undefined, 'trailing text: not projected');
});

t.test('kindSplice finds event.kind in JSON.stringify text, refuses other layouts', async (t) => {
  const cut = (o: unknown) => {
    const s = JSON.stringify(o);
    const k = kindSplice(s);
    return k && [s.slice(k[0], k[1]), k[2]];
  };
  t.same(cut({ a: 1, event: { kind: 'x', id: 2 } }), ['"x"', 0]);
  t.same(cut({ a: '"event":{"kind":1}', event: { id: 2 } }), ['', 1]);
  t.same(cut({ event: {} }), ['', 2]);
  t.same(cut({ a: { event: { kind: 1 } }, event: { b: { kind: 2 }, kind: [3, '"'] } }), [JSON.stringify([3, '"']), 0]);
  t.equal(kindSplice('{ "event": {"kind": 1} }'), null, 'whitespace');
  t.equal(kindSplice('{"a":1}'), null, 'no event');
  t.equal(kindSplice('{"event":"x"}'), null, 'event not an object');
  t.equal(kindSplice('{"a":"unterminated'), null, 'broken');
});

t.test('planLines + assembleLines and hitLines give JSON.stringify of each hitItems item', async (t) => {
  const set = loadRuleSet(dirWith({ 'a.rules': '[l]\nwatch = base\naction = match\ntrigger = log\n[a]\nwatch = base\naction = match\ntrigger = alert\n[b]\nwatch = base\naction = match\ntrigger = both\n[g]\nwatch = base\naction = match\n' }));
  const nodes = outputNodes(set.nodes);
  const hits = [0, 1, 2, 3, 2];
  for (const e of [...EDGE, ...objects.slice(0, 50), { rule: undefined, event: { id: 'u' } }]) {
    const items: unknown[] = [];
    hitItems(e, nodes, hits, items);
    const want = items.map((i) => JSON.stringify(i));
    const direct: string[] = [];
    hitLines(e, nodes, hits, direct);
    const lp: LinePlan = { texts: [], plan: [] };
    planLines(e, nodes, hits, lp);
    // Through a thread boundary's copy, as the worker sends it.
    const assembled: string[] = [];
    assembleLines(structuredClone(lp), nodes, assembled);
    if (!t.same(direct, want, 'hitLines') || !t.same(assembled, want, 'planLines → assembleLines')) {
      t.comment(JSON.stringify(e));
      break;
    }
  }
});

t.test('file → coalesce → rules → fanout (objects) writes what → jsonl (encoded) writes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-rules-route-'));
  const head = [{ use: 'file', path: fixtures('dev-1', 'audit.log') }, { use: 'coalesce' }, { use: 'rules', rulesdir, scriptsdir, workers: 2, reload: false }];
  const direct = await buildPipeline({ stages: [...head, { use: 'jsonl', path: path.join(dir, 'direct.jsonl') }] }, { log: memoryLog() });
  await direct.run();
  const routed = await buildPipeline({ stages: [...head, { use: 'fanout', branches: [[{ use: 'jsonl', path: path.join(dir, 'routed.jsonl') }]] }] as never }, { log: memoryLog() });
  await routed.run();
  const a = fs.readFileSync(path.join(dir, 'direct.jsonl'), 'utf8');
  t.ok(a.split('\n').length > 500, 'many lines');
  t.equal(fs.readFileSync(path.join(dir, 'routed.jsonl'), 'utf8'), a, 'byte for byte the same');
});

t.test('a script call given JSON text: same answer, fetchFile still gets the event', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['node', 'f.js', 'export async function check(e) {\n  const f = await skafe.fetchFile(e.p);\n  return Buffer.from(f.bytes).toString() === "hello" && e.q === "é\\u0000";\n}\n'],
    ['python3', 'f.py', 'def check(e):\n    f = skafe.fetch_file(e["p"])\n    return f["bytes"] == b"hello" and e["q"] == "é\\u0000"\n'],
  ];
  for (const [tool, name, text] of cases) {
    if (!need(t as never, { tool })) continue;
    const dir = dirWith({ [name]: text });
    const asked: unknown[] = [];
    const pool = new ScriptPool(
      { name: 'f', file: path.join(dir, name), lang: tool === 'node' ? 'js' : 'python' },
      { size: 1, timeoutMs: 5000, log: memoryLog(), count: () => {}, fetchFile: async (req) => (asked.push(req.event), { bytes: Buffer.from('hello'), sha256: '' }) },
    );
    await pool.start();
    const event = { p: '/usr/bin/tail', q: 'é\u0000' };
    t.equal(await pool.call(event), true, `${tool}: object`);
    t.equal(await pool.call(JSON.stringify(event), true), true, `${tool}: JSON text`);
    t.equal(await pool.call(JSON.stringify({ ...event, q: 'x' }), true), false, `${tool}: JSON text, no match`);
    t.same(asked, [event, event, { ...event, q: 'x' }], `${tool}: fetchFile gets the event as an object`);
    await pool.close();
  }
});

t.test("the server queue's release mark goes on with each batch's output, on its last piece", async (t) => {
  for (const out of ['objects', 'encoded', 'bytes'] as const) {
    const ctx = context(out);
    const stage = (await rulesStage.create({ rulesdir, scriptsdir, workers: 2, reload: false }, ctx)) as NodeJS.ReadWriteStream;
    // 300-event batches (enough hits to need two output pieces) and one batch where nothing fires.
    const inputs: unknown[][] = [];
    for (let i = 0; i < texts.length; i += 300) inputs.push(markEncoded(texts.slice(i, i + 300)));
    inputs.splice(1, 0, [{ tags: ['none'] }]);
    inputs.forEach((b, seq) => setRelease(b, seq));
    const seen: Array<[number, number | undefined]> = [];
    await pipeline(
      Readable.from(inputs, { objectMode: true }),
      stage,
      new Writable({
        objectMode: true,
        write(b: unknown[], _e, cb) {
          seen.push([b.length, getRelease(b)]);
          cb();
        },
      }),
    );
    const releases = seen.filter(([, r]) => r !== undefined).map(([, r]) => r);
    t.same(releases, inputs.map((_b, seq) => seq), `${out}: every input batch's release, in order, once`);
    t.ok(seen.some(([n, r]) => n === 0 && r === 1), 'a batch where nothing fired still carries its release (empty)');
    t.ok(seen.some(([n, r]) => n > 0 && r === undefined), 'earlier pieces of a batch carry none');
  }
});

t.test('the native projection builds what projectJson builds, line by line', async (t) => {
  const keys = [
    ...Object.entries(ALIASES).map(([k, v]) => compileKeyPath(k, [...v])),
    ...['process.args', 'process.args.0', 'auditd.paths.name', 'auditd.paths.1.name', 'auditd.data.a0', 'event.id', 'event.1', 'auditd.records.type', 'auditd.records.fields.name', 'user', 'rule.name', '', '__proto__.x', 'a\\', 'ü.x'].map((k) => compileKeyPath(k, [k])),
  ];
  const projection = projectionFor(keys, ['rule', 'event']);
  const projector = NativeProjector.create(projection);
  if (!t.ok(projector, 'the native projection is built')) return;
  const odd = [
    '{"__proto__":{"x":"own key"},"event":{"id":"p"}}',
    '{"process":{"executable":"a"},"process":{"name":"b"}}', // a repeated key: the last one counts, whole
    '{"pro\\u0063ess":{"executable":"escaped key"}}',
    '{"process":{"args":["a\\"b","c\\\\d","\\u00e9"]},"user":{"name":"ü 日本"}}',
    '{"auditd":{"paths":[{"name":"p0"},{"name":["p1",null]},[{"name":"deep"}]],"data":{"a0":12}}}',
    '{"process":{"args":tru}}', // not JSON: projectJson's own answer
    '{"process":{"executable":"x"', // truncated
    '{"a":1}x', // trailing text
    '{ "a": 1 }', // whitespace
    '[1,2]',
    '',
    '{}',
    '{"event":{}, "x":1}',
    '{"ü":{"x":"unicode key"},"event":{"kind":"event"}}',
    '{"process":{"args":[]},"auditd":{"paths":[]}}',
    '{"user":123,"process":{"pid":-1.5e3}}',
  ];
  const all = [...texts, ...odd];
  const bytes = Buffer.from(all.join('\n') + '\n');
  const got = projector!.project(bytes, bytes.length);
  t.same(Array.from({ length: got.length }, (_, i) => got.text(i)), all, 'the lines, decoded as splitJsonLines decodes them');
  // structure, values and prototypes (projectJson builds null-prototype objects)
  const show = (v: unknown): string =>
    v === undefined ? 'undefined' : v === null || typeof v !== 'object' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map(show).join(',')}]` : `${Object.getPrototypeOf(v) === null ? 'N' : 'O'}{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${show((v as Record<string, unknown>)[k])}`).join(',')}}`;
  let differ = 0;
  all.forEach((text, i) => {
    const want = show(projectJson(text, projection));
    const have = show(got.projected[i]);
    if (want !== have && differ++ < 3) t.comment(`line ${i}: ${text.slice(0, 120)}\n  projectJson ${want.slice(0, 300)}\n  native      ${have.slice(0, 300)}`);
  });
  t.equal(differ, 0, `the same projection for all ${all.length} lines`);
  t.ok(got.native >= texts.length, `the addon projected every event line (${got.native} of ${all.length} lines)`);

  // Output lines copied from the bytes (spliceLines) are the ones LineBytesBuilder.add builds from the text.
  const nodes = outputNodes(
    (['log', 'alert', 'both', 'both'] as const).map((trigger, i) => ({ name: i === 3 ? 'né"3' : `n${i}`, file: '/r/x.rules', trigger }) as never),
  );
  projector!.setTails(nodes);
  const spliceable = [...all, ...EDGE.map((e) => JSON.stringify(e)), '{"event":{"kind":"a","kind":"b"},"x":"é"}', '{"a":"日","event":{"k\u0069nd":1}}', '{"event":{},"event":{"kind":"x"}}', '{"rule":1,"event":{}}'];
  const sBytes = Buffer.from(spliceable.join('\n') + '\n');
  const batch = projector!.project(sBytes, sBytes.length);
  const hits = [0, 1, 2, 3, 2];
  const viaText = new LineBytesBuilder(undefined, 16);
  const viaBytes = new LineBytesBuilder(undefined, 16);
  let spliced = 0;
  spliceable.forEach((text, i) => {
    let e: unknown;
    try {
      e = JSON.parse(text);
    } catch {
      return;
    }
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return;
    viaText.add(e as Record<string, unknown>, text, nodes, hits);
    if (batch.spliceHow(i) >= 0) {
      spliced++;
      viaBytes.addSpliced(batch, i, nodes, hits);
    } else viaBytes.add(e as Record<string, unknown>, text, nodes, hits);
  });
  const a = viaText.finish();
  const b = viaBytes.finish();
  t.ok(spliced >= texts.length, `the event lines are copied from their bytes (${spliced} of ${spliceable.length})`);
  t.equal(b.count, a.count, 'as many lines');
  t.same(b.cuts, a.cuts, 'cut at the same offsets');
  t.ok(Buffer.from(b.bytes).equals(Buffer.from(a.bytes)), `the same ${a.bytes.length} bytes`);
  t.equal(batch.spliceHow(spliceable.length - 2), -1, 'a line with two `event` keys is not spliced');
  t.equal(batch.spliceHow(spliceable.length - 1), -1, 'a line with its own `rule` is not spliced');
  projector!.dispose();
});

t.test('a batch a worker fails ends the stream with its error, also while the stream is ending', async (t) => {
  const ctx = context('bytes');
  const stage = (await rulesStage.create({ rulesdir: matchOnlyDir, workers: 1, reload: false }, ctx)) as NodeJS.ReadWriteStream;
  // The worker forgets the rule set: the next batch it is given fails ("no rule set generation").
  const engine = (stage as unknown as { engine: { post(i: number, m: unknown): void; generation: { gen: number } } }).engine;
  engine.post(0, { t: 'drop', gen: engine.generation.gen });
  const sink = new Writable({ objectMode: true, write: (_b, _e, cb) => cb() });
  // One batch and the end at once: the failure comes while the stage flushes.
  const run = pipeline(Readable.from([markEncoded(texts.slice(0, 10))], { objectMode: true }), stage, sink);
  await t.rejects(run, /no rule set generation/, 'the pipeline fails with the worker\'s error (it used to spin in _flush)');
});

t.test('a batch that owns its buffer gets it back through its recycle mark, bytes unchanged, once the worker has read it', async (t) => {
  const ctx = context('bytes');
  const stage = (await rulesStage.create({ rulesdir: matchOnlyDir, workers: 2, reload: false }, ctx)) as NodeJS.ReadWriteStream;
  const want = Buffer.from(texts.slice(0, MAX_BATCH).join('\n') + '\n');
  const back: ArrayBuffer[] = [];
  const batches: unknown[][] = [];
  for (let k = 0; k < 6; k++) {
    // owners: transferred to a worker; the last two are not and are copied (their recycle mark stays unused)
    const buf = new ArrayBuffer(want.length + 100);
    new Uint8Array(buf).set(want);
    const b = markEncodedBytes(new Uint8Array(buf, 0, want.length), MAX_BATCH);
    if (k < 4) setBufferOwner(b);
    setRecycle(b, (returned) => void (returned !== undefined && back.push(returned)));
    batches.push(b);
  }
  let lines = 0;
  const sink = new Writable({ objectMode: true, write: (b: unknown[], _e, cb) => void ((lines += b.length), cb()) });
  await pipeline(Readable.from(batches, { objectMode: true }), stage, sink);
  t.equal(back.length, 4, 'each owner batch recycled with its buffer as it came back');
  for (const b of back) {
    t.equal(b.byteLength, want.length + 100, 'the whole buffer');
    t.ok(Buffer.from(b, 0, want.length).equals(want), 'holding the same bytes: the worker only read them');
  }
  const owned = batches.slice(0, 4).map((b) => encodedBytes(b)!);
  t.ok(owned.every((v) => v.buffer.byteLength === 0), 'the owners\' own handles were transferred');
  t.ok(batches.slice(4).every((b) => encodedBytes(b)!.buffer.byteLength > 0), 'the others were copied, not transferred');
  t.ok(lines > 0, `and the stage wrote its lines (${lines})`);
});
