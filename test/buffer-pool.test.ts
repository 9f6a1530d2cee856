// Output buffers are reused (src/buffer-pool.ts): written line by line into a
// spare buffer or a new one with room, byte-identical to encoding the joined
// text; split back line by line; the pool stays bounded; and a replay through
// coalesce's workers into jsonl hands its buffers back for the next batches.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeLines, giveBuffer, takeBuffer, pooledBuffers, roomFor } from '../src/buffer-pool.js';
import { splitJsonLines, transferable } from '../src/stage.js';
import { buildPipeline } from '../src/pipeline.js';
import { fixtures } from './helpers/env.js';

const quiet = { info() {}, warn() {}, error() {} };

const LINES = [
  '{"a":"plain"}',
  '{"b":"é ü 😀 \u2028 中文"}',
  '{"c":"lone \ud800 surrogate"}',
  '',
  'x'.repeat(70000),
  '"' + '😀'.repeat(30000) + '"',
];

t.test('encodeLines writes exactly what encoding the joined text gives, in any buffer', async (t) => {
  const want = Buffer.from(LINES.join('\n') + '\n');
  for (const [label, spare] of [
    ['no spare', undefined],
    ['a spare too small', new ArrayBuffer(1000)],
    ['a spare big enough for the chars, not the bytes', new ArrayBuffer(LINES.reduce((n, l) => n + l.length + 1, 0))],
    ['a roomy spare', roomFor(want.length * 2)],
  ] as const) {
    const got = encodeLines(LINES, spare);
    t.equal(got.byteOffset, 0, `${label}: a view from the start of its buffer`);
    t.ok(Buffer.from(got).equals(want), `${label}: the same bytes`);
  }
  t.same(splitJsonLines(encodeLines(LINES, undefined)), LINES.map((l) => Buffer.from(l).toString()), 'split back, line by line');
  t.same(splitJsonLines(new Uint8Array(0)), [], 'nothing: no lines');
  t.same(splitJsonLines(Buffer.from('a\nb')), ['a', 'b'], 'a last line without its newline still counts');
});

t.test('the pool keeps only buffers worth keeping, and only a few', async (t) => {
  while (takeBuffer() !== undefined);
  giveBuffer(new ArrayBuffer(100));
  t.equal(pooledBuffers(), 0, 'a small buffer is not kept');
  const b = roomFor(100000);
  structuredClone(b, { transfer: [b] }); // detached: length 0
  giveBuffer(b);
  t.equal(pooledBuffers(), 0, 'a transferred (detached) buffer is not kept');
  for (let i = 0; i < 50; i++) giveBuffer(roomFor(100000));
  t.ok(pooledBuffers() > 0 && pooledBuffers() <= 16, `bounded (${pooledBuffers()})`);
  while (takeBuffer() !== undefined);
});

t.test('a request for room gets the smallest pooled buffer that fits, or none', async (t) => {
  while (takeBuffer() !== undefined);
  const small = roomFor(100000);
  const large = roomFor(2000000);
  const middle = roomFor(500000);
  for (const b of [small, large, middle]) giveBuffer(b);
  t.equal(takeBuffer(3000000), undefined, 'none big enough: none taken');
  t.equal(pooledBuffers(), 3, 'and all still pooled');
  t.equal(takeBuffer(400000), middle, 'the smallest that fits');
  t.equal(takeBuffer(), small, 'no size asked: the smallest');
  t.equal(takeBuffer(1), large, 'the one left');
  t.equal(takeBuffer(), undefined, 'then none');
});

t.test('file → coalesce (workers) → jsonl: the written batches come back to the pool', async (t) => {
  while (takeBuffer() !== undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-pool-'));
  const out = path.join(dir, 'events.jsonl');
  const p = await buildPipeline({ stages: [{ use: 'file', path: fixtures('dev-1', 'audit.log') }, { use: 'coalesce', workers: 2 }, { use: 'jsonl', path: out }] }, { log: quiet });
  await p.run();
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  t.equal(lines.length, 496, 'every event written');
  t.ok(pooledBuffers() > 0, `buffers handed back (${pooledBuffers()})`);
  while (takeBuffer() !== undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

t.test('transferable: a Buffer that is a view into Node\'s shared pool is copied, and the pool stays whole', (t) => {
  // Small Buffer.from() results share one 8 KB pool (coalesce's trickle path makes its bytes so)
  const before = Buffer.from('{"before":1}\n');
  const bytes = Buffer.from('{"a":1}\n{"b":2}\n');
  const after = Buffer.from('{"after":1}\n');
  t.equal(bytes.buffer, before.buffer, 'the two share a buffer (the test needs them to)');
  t.ok(bytes.byteOffset > 0, 'the bytes start inside it');
  const { buffer, length } = transferable(bytes, false);
  t.not(buffer, bytes.buffer, 'a buffer of its own');
  t.equal(Buffer.from(buffer, 0, length).toString(), '{"a":1}\n{"b":2}\n', 'holding exactly the bytes');
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, [buffer]);
  port1.close();
  port2.close();
  t.equal(before.toString() + bytes.toString() + after.toString(), '{"before":1}\n{"a":1}\n{"b":2}\n{"after":1}\n', 'transferring it left the shared pool alone');
  t.end();
});

t.test('a full pool makes room by dropping the buffer given longest ago: the sizes in use change', async (t) => {
  while (takeBuffer() !== undefined);
  const small = Array.from({ length: 40 }, () => roomFor(100000));
  for (const b of small) giveBuffer(b);
  const full = pooledBuffers();
  t.equal(full, 16, 'full at 16');
  const large = Array.from({ length: 16 }, () => roomFor(8000000));
  giveBuffer(large[0]!);
  t.equal(pooledBuffers(), full, 'still bounded');
  t.equal(takeBuffer(4000000), large[0], 'a large request finds the large buffer');
  // stale small buffers no request uses give way to the sizes now returned
  for (const b of large) giveBuffer(b);
  const kept: ArrayBuffer[] = [];
  for (let b = takeBuffer(); b !== undefined; b = takeBuffer()) kept.push(b);
  t.equal(kept.length, 16, 'still bounded');
  t.ok(large.every((b) => kept.includes(b)), 'all sixteen large ones kept, the small ones given before them dropped');
});
