import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildPipeline } from '../../src/pipeline.js';
import { ALIASES, resolveKey } from '../../src/rules/aliases.js';
import { compileKeyPath, keyValues, type KeyPath } from '../../src/rules/keypath.js';
import { fixtures } from '../helpers/env.js';
import { memoryLog } from './helpers.js';

// keyValues walks most keys through objects only and fans out over arrays
// only where it meets one: held here to the rule as docs/rules.md states it,
// written out plainly (every path recursive, arrays or not).

function reference(event: unknown, kp: KeyPath): string[] {
  const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const collect = (v: unknown, parts: string[], i: number, out: unknown[]): void => {
    if (v === undefined || v === null) return;
    if (i === parts.length) return void out.push(v);
    if (Array.isArray(v)) {
      if (/^\d+$/.test(parts[i]!)) collect(v[Number(parts[i])], parts, i + 1, out);
      else for (const el of v) collect(el, parts, i, out);
    } else if (typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const rest = parts.slice(i).join('.');
      if (own(o, parts[i]!)) collect(o[parts[i]!], parts, i + 1, out);
      else if (i < parts.length - 1 && own(o, rest)) out.push(o[rest]);
    }
  };
  const scalars = (v: unknown, out: string[]): void => {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out.push(String(v));
    else if (Array.isArray(v)) for (const el of v) scalars(el, out);
  };
  for (const p of kp.paths) {
    const join = p.join;
    const found: unknown[] = [];
    collect(event, p.parts, 0, found);
    const out: string[] = [];
    for (const v of found) scalars(v, out);
    if (out.length) return join ? [out.join(' ')] : out;
  }
  return [];
}

// The dev-1 corpus as coalesce makes it: skafe's events, whose keys the aliases name.
const eventsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-keypath-')), 'events.jsonl');
await (await buildPipeline({ stages: [{ use: 'file', path: fixtures('dev-1', 'audit.log') }, { use: 'coalesce' }, { use: 'jsonl', path: eventsFile }] }, { log: memoryLog() })).run();
const corpus = fs
  .readFileSync(eventsFile, 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as unknown);
fs.rmSync(path.dirname(eventsFile), { recursive: true, force: true });

const odd: unknown[] = [
  { process: { args: ['a', 1, true, null, { x: 1 }, ['n', 2]] } },
  { process: [{ executable: '/a' }, { executable: ['/b', '/c'] }, { executable: null }, 'str'] },
  { process: { args: [{ 0: 'obj zero' }] }, 'process.args': ['flat'] },
  { 'process.executable': '/flat', user: { name: 'x' } },
  { 'process.executable': '/flat', process: { name: 'x' } },
  { process: { 'parent.pid': 7 } },
  { process: { parent: null, ppid: 3 } },
  { user: 'string', tags: [] },
  { user: { name: { first: 'obj' } }, tags: [['nested', ['deep']]] },
  { auditd: { data: [{ syscall: 'open' }, { syscall: 59 }] }, event: { outcome: false } },
  { process: { args: 'not an array', args_count: 0 }, file: { path: '' } },
  [{ user: { name: 'in an array' } }],
  null,
  'text',
  { 0: { 1: 'numeric keys' }, a: [[{ b: 'two arrays deep' }]] },
];

const keys = [
  ...Object.keys(ALIASES),
  'a0',
  'a1',
  'a7',
  'process.args',
  'process.args.0',
  'process.args.1.0',
  'auditd.paths.name',
  'auditd.data',
  'user',
  'tags',
  '0.1',
  'a.b',
  'event',
  'nothing.here',
].map((k) => compileKeyPath(k, resolveKey(k)));

t.test('keyValues answers as the plain recursive reading, for every corpus event and odd ones', async (t) => {
  let checked = 0;
  let found = 0;
  const wrong: string[] = [];
  for (const e of [...corpus, ...odd]) {
    for (const kp of keys) {
      const got = keyValues(e, kp);
      const want = reference(e, kp);
      checked++;
      if (want.length) found++;
      if (JSON.stringify(got) !== JSON.stringify(want) && wrong.length < 5) wrong.push(`${kp.key} on ${JSON.stringify(e).slice(0, 120)}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
    }
  }
  t.same(wrong, [], 'no disagreement');
  t.ok(corpus.length > 400, `${corpus.length} corpus events`);
  t.ok(found > 2000, `${found} of ${checked} readings found values`);
});

t.test('the turns the walk takes', async (t) => {
  const kv = (e: unknown, key: string) => keyValues(e, compileKeyPath(key, resolveKey(key)));
  t.same(kv(odd[0], 'process.args'), ['a', '1', 'true', 'n', '2'], 'an array at the end: its scalars, nested arrays flattened');
  t.same(kv(odd[0], 'cmd'), ['a 1 true n 2'], 'join: one string');
  t.same(kv(odd[1], 'bin'), ['/a', '/b', '/c'], 'an array on the way fans out');
  t.same(kv(odd[3], 'bin'), ['/flat'], 'a flattened key where the object has no such part');
  t.same(kv(odd[4], 'bin'), [], 'where it has the part, the flattened key is not read');
  t.same(kv(odd[5], 'ppid'), ['7'], 'a flattened rest deeper down');
  t.same(kv(odd[6], 'ppid'), ['3'], 'null on the first path: the next one');
  t.same(kv(odd[8], 'uname'), [], 'an object yields nothing');
  t.same(kv(odd[10], 'argc'), ['0'], 'zero is a value');
  t.same(kv(odd[10], 'path'), [''], 'so is the empty string');
  t.same(kv(odd[11], 'uname'), ['in an array'], 'an event that is an array');
  t.same(kv(odd[14], '0.1'), ['numeric keys'], 'numeric parts on objects are keys');
});
