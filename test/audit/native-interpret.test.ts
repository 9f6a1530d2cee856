// The native interpreter (native/interpret) against the JavaScript one: for
// every event of every committed corpus and of a generated log of mangled
// records, the native line must be byte for byte JSON.stringify(interpret())
// or the event must be left to JavaScript. On the real corpora nearly every
// event must go the native way, or the addon is built for nothing.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseRecordLine, type AuditRecord } from '../../src/audit/record.js';
import { interpret } from '../../src/audit/interpret.js';
import { setUserDatabase } from '../../src/audit/users.js';
import { packEvents, unpackEventAt } from '../../src/transforms/event-packing.js';
import { interpretPacked, nativeInterpreterAvailable } from '../../src/audit/native-interpret.js';
import { fixtures } from '../helpers/env.js';

function eventsOf(text: string): AuditRecord[][] {
  const byId = new Map<string, AuditRecord[]>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const r = parseRecordLine(line);
    if ('error' in r) continue;
    const k = `${r.node ?? ''}\0${r.id}`;
    let list = byId.get(k);
    if (list === undefined) byId.set(k, (list = []));
    list.push(r);
  }
  return [...byId.values()];
}

/** Native and JavaScript lines of every event; how many went to JavaScript; the first differences. */
function compare(events: AuditRecord[][], spareSize = 0): { slow: number; differ: string[] } {
  let slow = 0;
  const differ: string[] = [];
  for (let i = 0; i < events.length; i += 128) {
    const batch = events.slice(i, i + 128);
    const flat = packEvents(batch);
    const r = interpretPacked(flat, spareSize ? new ArrayBuffer(spareSize) : undefined, (at) => {
      slow++;
      return JSON.stringify(interpret(unpackEventAt(flat, at)));
    })!;
    const lines = Buffer.from(r.bytes).toString('utf8').split('\n');
    if (lines.pop() !== '') differ.push(`batch ${i}: no newline at the end`);
    if (r.count !== batch.length || lines.length !== batch.length) differ.push(`batch ${i}: ${lines.length} lines for ${batch.length} events`);
    batch.forEach((recs, k) => {
      const want = JSON.stringify(interpret(recs));
      if (lines[k] !== want && differ.length < 5) differ.push(`event ${recs[0]!.id}:\n  js     ${want}\n  native ${lines[k]}`);
    });
  }
  return { slow, differ };
}

// Deterministic mangling: the same log every run.
let seed = 12345;
function rnd(n: number): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
}
const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
const hex = (b: Buffer) => b.toString('hex').toUpperCase();

const NAMES = ['pid', 'ppid', 'uid', 'auid', 'ses', 'comm', 'exe', 'key', 'name', 'cwd', 'item', 'nametype', 'mode', 'ouid', 'ogid', 'OUID', 'UID', 'AUID', 'ARCH', 'SYSCALL', 'arch', 'syscall', 'success', 'res', 'argc', 'a0', 'a1', 'saddr', 'proctitle', 'msg', 'unparsed', '__proto__', 'constructor', 'toString', '123', '0', 'x', '', 'data', 'inode', 'dev', 'euid', 'egid', 'EGID', 'fsuid', 'sgid', 'gid', 'GID'];
const VALUES = [
  () => '"plain text"',
  () => '"with \\ backslash and \\"quote"',
  () => `"${pick(['ünïcödé', '日本語', 'tab\there', 'emoji 😀', 'ctl\x01\x7f', '\u2028sep'])}"`,
  () => hex(Buffer.from(pick(['a b', 'x\ny', 'ü', '\0nul\0', 'quote"s', 'tab\t', '\x01\x02', '/tmp/x y']))),
  () => hex(Buffer.from([0xff, 0xfe, 0x41])), // invalid UTF-8
  () => hex(Buffer.from([0xe2, 0x82])), // truncated sequence
  () => hex(Buffer.from([0xed, 0xa0, 0x80])), // a surrogate, encoded
  () => hex(Buffer.from([0xf0, 0x9f, 0x98, 0x80])),
  () => 'ABC', // odd-length non-hex
  () => 'zz',
  () => '(null)',
  () => '(none)',
  () => '?',
  () => '',
  () => pick(['0', '1', '0012', '-1', '1e3', '0x1f', '4294967295', '1000', '65534', '99999', '9007199254740993', '12345678901234567890']),
  () => pick(['yes', 'no', 'success', 'failed', '1', '0', 'other']),
  () => pick(['c000003e', 'C000003E', '40000003', 'c00000b7', 'deadbeef']),
  () => pick(['59', '0', '999', '42', '43', '49', '44', '45', '05']),
  () => pick(['NORMAL', 'PARENT', 'CREATE', 'DELETE']),
  () => pick(['0100644', '040755', '0104755', '777', '9', '012345670123456701']),
  () => pick(['x.txt', '../up/x', './here', 'a//b', '', 'dir/', '/abs/p', '..', '.']),
  () => `'op=${pick(['test', 'adding group'])} acct="root" exe="/usr/bin/x" res=${pick(['success', 'failed'])}'`,
  () => `'unterminated`,
  () => '"unterminated',
  () => '{ brace stuff }',
  () => '{ unterminated',
  () => hex(Buffer.from(pick(['k1', 'k1\x01k2', 'k1\x01k2\x01k3', '']))),
  () =>
    hex(
      pick([
        Buffer.from('02000050c0a80101' + '0000000000000000', 'hex'),
        Buffer.from('0a0001bb00000000' + '20010db8000000000000000000000001' + '00000000', 'hex'),
        Buffer.from('0a0001bb00000000' + '00000000000000000000ffff7f000001' + '00000000', 'hex'),
        Buffer.from('0a00000000000000' + '00000000000000000000000000000000' + '00000000', 'hex'),
        Buffer.from('01002f72756e2f782e736f636b00', 'hex'),
        Buffer.from('0100006162737472616374000000', 'hex'),
        Buffer.from('0100', 'hex'),
        Buffer.from('010000', 'hex'),
        Buffer.from('0100ff', 'hex'),
        Buffer.from('1000000039300000', 'hex'),
        Buffer.from('1000', 'hex'),
        Buffer.from('0000', 'hex'),
        Buffer.from('6300aabb', 'hex'),
        Buffer.from('0200', 'hex'),
        Buffer.from('0a00', 'hex'),
      ]),
    ),
];

function mangle(line: string): string {
  const gs = line.indexOf('\x1d');
  let body = gs < 0 ? line : line.slice(0, gs);
  let enriched = gs < 0 ? undefined : line.slice(gs + 1);
  const ops = 1 + rnd(3);
  for (let k = 0; k < ops; k++) {
    const field = `${pick(NAMES)}=${pick(VALUES)()}`;
    switch (rnd(8)) {
      case 0:
      case 1:
        body += ' ' + field;
        break;
      case 2: {
        // replace the value of an existing field
        const m = / ([a-z_0-9]+)=("[^"]*"|\S*)/g;
        const all = [...body.matchAll(m)];
        if (all.length) {
          const x = pick(all);
          body = body.slice(0, x.index) + ` ${x[1]}=${pick(VALUES)()}` + body.slice(x.index! + x[0].length);
        }
        break;
      }
      case 3:
        body += ' ' + pick(['bare', 'two words', '  spaced']);
        break;
      case 4:
        enriched = (enriched ?? '') + `${enriched ? ' ' : ''}${pick(['UID', 'AUID', 'GID', 'OUID', 'OGID', 'ARCH', 'SYSCALL', 'EUID', 'SADDR'])}="${pick(['root', 'unknown(1234)', 'x y', 'ü'])}"`;
        break;
      case 5:
        if (!body.startsWith('node=')) body = `node=${pick(['host1', 'h.example', 'ü'])} ${body}`;
        break;
      case 6:
        body = body.slice(0, Math.max(body.indexOf('): ') + 3, rnd(body.length)));
        break;
      default:
        body = body.replace(/ (\S+)=/, ` ${pick(NAMES)}=`);
    }
  }
  return enriched === undefined ? body : `${body}\x1d${enriched}`;
}

t.test('the native interpreter writes what JSON.stringify(interpret()) writes', async (t) => {
  // npm ci builds it (the package's install script), as it builds the netlink addon
  if (!t.ok(nativeInterpreterAvailable(), 'the native interpreter is built and loads')) return;
  setUserDatabase(fixtures('passwd'), fixtures('group'));
  for (const corpus of ['dev-1', 'dev-2']) {
    const events = eventsOf(readFileSync(fixtures(corpus, 'audit.log'), 'utf8'));
    const r = compare(events);
    t.same(r.differ, [], `${corpus}: every line the same bytes`);
    // the events left to JavaScript are the ones with long EXECVE arguments
    t.ok(r.slow <= events.length / 50, `${corpus}: ${events.length - r.slow} of ${events.length} events native`);
  }
  const small = compare(eventsOf(readFileSync(fixtures('dev-1', 'audit.log'), 'utf8')), 4096);
  t.same(small.differ, [], 'a spare buffer far too small: grown, the same bytes');

  const base = readFileSync(fixtures('dev-1', 'audit.log'), 'utf8').trim().split('\n');
  for (let round = 0; round < 8; round++) {
    const lines = base.map((l) => (rnd(10) < 1 + round ? mangle(l) : l));
    const events = eventsOf(lines.join('\n'));
    const r = compare(events);
    t.same(r.differ, [], `mangled log ${round + 1}: every line the same bytes (${events.length - r.slow} of ${events.length} native)`);
    t.ok(r.slow > 0 && r.slow < events.length, 'and the mangling sends some events each way');
  }
  setUserDatabase('/etc/passwd', '/etc/group');
});
