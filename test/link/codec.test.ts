import t from 'tap';
import { checkEventCount, packLines, unpackLines, TooManyEvents } from '../../src/link/codec.js';

// The queue refuses a batch of more events than max_batch_events before it
// splits anything: counted on the expanded bytes, as lines or as a JSON
// array's elements, the same count unpackLines would give.

const over = (text: string, max: number) => {
  try {
    checkEventCount(Buffer.from(text), max);
    return false;
  } catch (e) {
    if (!(e instanceof TooManyEvents)) throw e;
    return true;
  }
};

t.test('lines: as many as split would cut', async (t) => {
  t.equal(over('', 1), false, 'nothing');
  t.equal(over('{}', 1), false, 'one');
  t.equal(over('{}\n{}', 1), true, 'two past one');
  t.equal(over('{}\n{}\n{}', 3), false, 'three at three');
  t.equal(over('{}\n{}\n{}\n', 3), true, 'a trailing newline cuts a fourth (blank) line');
  t.equal(over('{"a":"x\\ny"}\n{}', 2), false, 'an escaped newline is not one');
});

t.test('a JSON array: its top-level elements', async (t) => {
  t.equal(over('[{},{},{}]', 3), false, 'three at three');
  t.equal(over('[{},{},{},{}]', 3), true, 'four past three');
  t.equal(over('[{"a":[1,2,3],"b":{"c":1,"d":2}},{"s":"x,y,z"}]', 2), false, 'commas inside values and strings do not count');
  t.equal(over('[{"s":"a\\",b"},{}]', 2), false, 'nor after an escaped quote');
  t.equal(over('[{"s":"a\\\\"},{},{}]', 2), true, 'an escaped backslash ends no string early');
});

t.test('unpackLines refuses past the limit, with the code the queue reports', async (t) => {
  const lines = Array.from({ length: 1001 }, (_v, i) => `{"i":${i}}`);
  const packed = await packLines(lines);
  t.equal((await unpackLines(packed, undefined, 1001)).length, 1001, 'at the limit: all');
  await t.rejects(unpackLines(packed, undefined, 1000), { code: 'SKAFE_TOO_MANY_EVENTS', message: /more than 1000 events/ }, 'past it: refused');
});
