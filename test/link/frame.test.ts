import t from 'tap';
import { FrameDecoder, encodeFrame } from '../../src/link/frame.js';
import { encodeAck, decodeAck, encodeBatch, decodeBatch, decodeHello, encodeJson, MsgType } from '../../src/link/protocol.js';
import { Backoff } from '../../src/link/backoff.js';
import { TokenBucket } from '../../src/transforms/throttle.js';
import { isSkafeError } from '../../src/errors.js';

t.test('frames survive arbitrary splitting', async (t) => {
  const frames = [encodeFrame(1, Buffer.from('hello')), encodeFrame(3, Buffer.alloc(70_000, 7)), encodeFrame(5)];
  const all = Buffer.concat(frames);
  for (const step of [1, 3, 4, 5, 4096, all.length]) {
    const d = new FrameDecoder();
    const got = [];
    for (let i = 0; i < all.length; i += step) got.push(...d.push(all.subarray(i, i + step)));
    t.same(got.map((f) => [f.type, f.payload.length]), [[1, 5], [3, 70_000], [5, 0]], `chunks of ${step}`);
  }
});

t.test('an oversized frame is refused from its header, before buffering it', async (t) => {
  const d = new FrameDecoder(1024);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(1025);
  let err: unknown;
  try {
    d.push(head);
  } catch (e) {
    err = e;
  }
  t.ok(isSkafeError(err, 'SKAFE_PROTOCOL'), 'SKAFE_PROTOCOL');
  t.match((err as Error).message, /exceeds the 1024-byte cap/);
  const z = Buffer.alloc(4);
  t.throws(() => new FrameDecoder().push(z), /empty frame/);
});

t.test('held: the bytes of a frame not yet complete; the cap may be raised once the peer is known', async (t) => {
  const d = new FrameDecoder(1024);
  const big = encodeFrame(3, Buffer.alloc(2000, 7));
  t.throws(() => new FrameDecoder(1024).push(big.subarray(0, 10)), /exceeds the 1024-byte cap/, 'refused under the first cap');
  d.setMaxFrame(4096);
  t.same(d.push(big.subarray(0, 1500)), [], 'not complete');
  t.equal(d.held, 1500, 'held as read');
  const small = encodeFrame(5, Buffer.from('x'));
  const got = d.push(Buffer.concat([big.subarray(1500), small.subarray(0, 3)]));
  t.same(got.map((f) => [f.type, f.payload.length]), [[3, 2000]]);
  t.equal(d.held, 3, 'only the next frame\'s start held');
  d.push(small.subarray(3));
  t.equal(d.held, 0, 'nothing held between frames');
});

t.test('protocol messages round-trip; "nothing acked" (-1) fits', async (t) => {
  const d = new FrameDecoder();
  t.same(decodeAck(d.push(encodeAck({ acked: -1, credits: 3 }))[0]!), { acked: -1, credits: 3 });
  t.same(decodeAck(d.push(encodeAck({ acked: 2 ** 40, credits: 0 }))[0]!), { acked: 2 ** 40, credits: 0 });
  const b = decodeBatch(d.push(encodeBatch({ first: 123456789, count: 512, data: Buffer.from('xyz') }))[0]!);
  t.same([b.first, b.count, b.data.toString()], [123456789, 512, 'xyz']);
  t.throws(() => decodeHello(d.push(encodeJson(MsgType.HELLO, { v: 99, agent: 'a', spool: 'ab'.repeat(16), next: 0 }))[0]!), /unsupported protocol version 99/);
  t.throws(() => decodeHello(d.push(encodeJson(MsgType.HELLO, { v: 1, agent: 'a', spool: 'x', next: 0 }))[0]!), /HELLO lacks/);
});

t.test('backoff: exponential, jittered, capped at 10 s, reset on success', async (t) => {
  const b = new Backoff(200, 10_000, () => 1);
  const seq = Array.from({ length: 10 }, () => b.next());
  t.same(seq.slice(0, 4), [200, 400, 800, 1600]);
  t.equal(Math.max(...seq), 10_000, 'capped');
  const low = new Backoff(200, 10_000, () => 0);
  t.equal(low.next(), 100, 'jitter takes at most half off');
  b.reset();
  t.equal(b.next(), 200);
});

t.test('token bucket: long-run rate holds and bursts are bounded', async (t) => {
  let now = 0;
  const bucket = new TokenBucket(1000, 100, () => now);
  let passed = 0;
  // Offer 10 events every ms for 2 s (10× the rate): only ~rate passes.
  for (now = 0; now < 2000; now += 1) if (bucket.take(10) === 0) passed += 10;
  t.ok(passed >= 1900 && passed <= 2110, `~2000 passed in 2 s at 1000/s (got ${passed})`);
  // After idling, at most `burst` (+ one batch of debt) passes at once.
  now += 10_000;
  let burst = 0;
  while (bucket.take(10) === 0) burst += 10;
  t.ok(burst <= 110, `burst bounded (got ${burst})`);
});
