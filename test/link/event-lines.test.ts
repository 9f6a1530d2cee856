// The server's check of agents' event lines (native/interpret/src/check-lines.cc)
// must take exactly the lines JSON.parse reads as an object, and splice the agent
// only into lines where that gives the same event as parsing would.
import t from 'tap';
import fs from 'node:fs';
import { fixtures } from '../helpers/env.js';
import { interpretAddon } from '../../src/native-addon.js';
import { checkLinesInJs, SPLICE, MERGE, BAD, MAX_DEPTH } from '../../src/link/event-lines.js';

interface Addon {
  checkJsonLines(bytes: Uint8Array, length: number, statuses: Uint8Array): number;
}

function native(lines: string[]): Uint8Array {
  const addon = interpretAddon<Addon>()!;
  const raw = Buffer.from(lines.join('\n'));
  const status = new Uint8Array(lines.length);
  t.equal(addon.checkJsonLines(raw, raw.length, status), lines.length, 'the addon splits the lines as split does');
  return status;
}

function inJs(lines: string[]): Uint8Array {
  const status = new Uint8Array(lines.length);
  checkLinesInJs(lines, status);
  return status;
}

/** The addon is built by `npm ci`; without it (a failed build) the test skips, and fails under CI=true. */
function haveAddon(t: { fail(m: string): void; skip(m: string): void }): boolean {
  if (interpretAddon()) return true;
  if (process.env.CI === 'true') t.fail('the native addon is not built');
  else t.skip('the native addon is not built');
  return false;
}

const nest = (d: number) => '{"a":' + '['.repeat(d - 1) + ']'.repeat(d - 1) + '}';

const CASES: Array<[string, number]> = [
  ['{"a":1}', SPLICE],
  ['{"a":{"agent":1}}', SPLICE],
  ['{"a":"\\"agent\\":"}', SPLICE],
  ['{"a":[1,-2.5e+3,0,true,false,null,"x\\u00e9\\n\\/"],"b":{}}', SPLICE],
  ['{"a":"é, 日本"}', SPLICE],
  [nest(MAX_DEPTH), SPLICE],
  ['{"agent":{"name":"x"}}', MERGE],
  ['{"a":1,"agent":null}', MERGE],
  ['{"\\u0061gent":1}', MERGE],
  ['{"a\\n":1}', MERGE],
  ['{}', MERGE],
  ['{ }', MERGE],
  [' {"a":1}', MERGE],
  ['{"a":1} ', MERGE],
  ['{"a":1}\r', MERGE],
  ['{ "a" : 1 }', MERGE],
  [nest(MAX_DEPTH + 1), BAD],
  ['', BAD],
  ['[{"a":1}]', BAD],
  ['"x"', BAD],
  ['1', BAD],
  ['null', BAD],
  ['{"a":1}}', BAD],
  ['{"a":1} x', BAD],
  ['{"a":1,}', BAD],
  ['{"a":01}', BAD],
  ['{"a":1.}', BAD],
  ['{"a":.5}', BAD],
  ['{"a":-}', BAD],
  ['{"a":1e}', BAD],
  ['{"a":+1}', BAD],
  ['{"a":tru}', BAD],
  ['{"a":"\\x"}', BAD],
  ['{"a":"\\u00g0"}', BAD],
  ['{"a":"tab\there"}', BAD],
  ['{"a":"\u0000"}', BAD],
  ["{'a':1}", BAD],
  ['{a:1}', BAD],
  ['{"a" 1}', BAD],
  ['{"a":[1 2]}', BAD],
  ['{"a":[1,]}', BAD],
  ['{"a":NaN}', BAD],
  ['{"a":"unterminated}', BAD],
  ['{"a":1', BAD],
  ['\u00a0{"a":1}', BAD],
];

t.test('statuses of hand-picked lines, native and in JavaScript', async (t) => {
  if (!haveAddon(t as never)) return;
  const lines = CASES.map((c) => c[0]);
  const n = native(lines);
  const js = inJs(lines);
  CASES.forEach(([line, want], i) => {
    t.equal(n[i], want, `native: ${JSON.stringify(line).slice(0, 60)}`);
    // JavaScript cannot see that a key was escaped: it splices where only that differs.
    const escapedKeyOnly = want === MERGE && line.startsWith('{"') && line.endsWith('}') && !Object.hasOwn(JSON.parse(line) as object, 'agent');
    t.equal(js[i], escapedKeyOnly ? SPLICE : want, `js: ${JSON.stringify(line).slice(0, 60)}`);
  });
});

t.test('mutated corpus events: the addon takes what JSON.parse takes, and splices only what parses to an object without agent', async (t) => {
  if (!haveAddon(t as never)) return;
  // libauparse's reading of the dev-1 log: real event-sized JSON lines
  const events = fs.readFileSync(fixtures('dev-1', 'expected.jsonl'), 'utf8').split('\n').filter(Boolean);
  // A fixed-seed generator, so a failure can be reproduced.
  let seed = 0x2545f491;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const alphabet = ['{', '}', '[', ']', '"', '\\', ',', ':', '0', '1', '-', '.', 'e', '+', 't', 'n', ' ', '\t', '\r', 'u', 'a', '\u0001', 'é'];
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    let l = events[i % events.length]!;
    l = l.length > 400 ? l.slice(0, 300) + l.slice(-100) : l;
    for (let k = 1 + rnd(3); k > 0; k--) {
      const p = rnd(l.length + 1);
      const c = alphabet[rnd(alphabet.length)]!;
      const op = rnd(3);
      l = op === 0 ? l.slice(0, p) + c + l.slice(p) : op === 1 ? l.slice(0, p) + l.slice(p + 1) : l.slice(0, p) + c + l.slice(p + 1);
    }
    lines.push(l);
  }
  const n = native(lines);
  const js = inJs(lines);
  let wrong = 0;
  let bad = 0;
  for (let i = 0; i < lines.length; i++) {
    if (n[i] === BAD) bad++;
    if ((n[i] === BAD) !== (js[i] === BAD) || (n[i] === SPLICE && js[i] !== SPLICE)) {
      if (wrong++ < 5) t.fail(`line ${i}: native ${n[i]}, JavaScript ${js[i]}: ${JSON.stringify(lines[i])}`);
    }
  }
  t.equal(wrong, 0, 'native and JSON.parse agree on every line');
  t.ok(bad > 5000 && bad < 19_000, `the mutations make both kinds of line (${bad} of ${lines.length} not objects)`);
});
