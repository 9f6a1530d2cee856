import { promisify } from 'node:util';
import zlib from 'node:zlib';

// Events travel and rest as deflate-raw of a JSON array: several times smaller
// on audit events. Small batches are (de)compressed inline: a hop to the libuv
// pool costs more than the work and serialises a busy reader behind the pool;
// big ones go to the pool so the event loop keeps reading.
const deflate = promisify(zlib.deflateRaw);
const inflate = promisify(zlib.inflateRaw);
const INLINE = 64 * 1024;
const OPTS = { level: 1 };

export async function packEvents(events: unknown[]): Promise<Buffer> {
  const json = Buffer.from(JSON.stringify(events));
  return json.length <= INLINE ? zlib.deflateRawSync(json, OPTS) : deflate(json, OPTS);
}

export async function unpackEvents(data: Buffer): Promise<object[]> {
  const raw = data.length <= INLINE / 4 ? zlib.inflateRawSync(data) : await inflate(data);
  const v = JSON.parse(raw.toString('utf8'));
  if (!Array.isArray(v)) throw new Error('packed batch is not a JSON array');
  return v;
}
