import { promisify } from 'node:util';
import zlib from 'node:zlib';

// Events travel and rest as brotli (quality 1) of JSON lines (one event per line;
// JSON.stringify never emits a raw newline). Lines, not one JSON array, so the
// server can hand each event's text to a sink that writes JSON lines without
// parsing and re-serializing it. A payload starting with '[' (a JSON array) is
// read too. Brotli q1 against deflate-raw level 1 on 496 dev-1 events (1 MB of
// JSON): 30× vs 20× smaller, 0.54 vs 1.09 ms to compress, 0.79 vs 1.03 ms to
// expand; a tie on 3-event batches. Small batches are (de)compressed inline: a hop to the libuv pool
// costs more than the work and serialises a busy reader behind the pool; big
// ones go to the pool so the event loop keeps reading.
const compress = promisify(zlib.brotliCompress);
const decompress = promisify(zlib.brotliDecompress);
const INLINE = 64 * 1024;
const OPTS = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } };

export async function packEvents(events: unknown[]): Promise<Buffer> {
  let text = '';
  for (let i = 0; i < events.length; i++) text += (i ? '\n' : '') + JSON.stringify(events[i]);
  return packText(text);
}

/** Events already written as JSON text, one per line. */
export function packLines(lines: string[]): Promise<Buffer> {
  return packText(lines.join('\n'));
}

async function packText(text: string): Promise<Buffer> {
  const raw = Buffer.from(text);
  const opts = { ...OPTS, params: { ...OPTS.params, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } };
  return raw.length <= INLINE ? zlib.brotliCompressSync(raw, opts) : compress(raw, opts);
}

/**
 * What a packed batch may expand to, by default: 256 MiB. An agent's entries
 * hold at most 512 events, so that is half a megabyte an event; a batch
 * made to expand further (a few kilobytes of brotli can stand for gigabytes)
 * is refused before it is in memory, or it would take the server down, and
 * again at every restart while the queue holds it.
 */
export const MAX_EXPANDED = 256 * 1024 * 1024;

/**
 * Events a packed batch may hold, by default. An agent's entries hold at most
 * 512 (its spool's batches); a batch of millions of tiny lines fits under
 * MAX_EXPANDED and would still take the server down as strings, and again at
 * every restart while the queue holds it. Counted on the expanded bytes
 * before anything is split, so refusing one costs no memory.
 */
export const MAX_EVENTS = 65536;

/** Thrown for a batch holding more events than allowed (code SKAFE_TOO_MANY_EVENTS). */
export class TooManyEvents extends Error {
  readonly code = 'SKAFE_TOO_MANY_EVENTS';
  constructor(readonly max: number) {
    super(`it holds more than ${max} events`);
  }
}

/**
 * Throws TooManyEvents when expanded bytes hold more than `max` events: lines
 * (as split('\n') would cut them), or a JSON array's elements. Stops counting
 * past `max`.
 */
export function checkEventCount(raw: Buffer, max: number): void {
  if (raw.length === 0) return;
  if (raw[0] === 0x5b) {
    if (arrayElementsOver(raw, max)) throw new TooManyEvents(max);
    return;
  }
  let n = 1;
  for (let at = raw.indexOf(10); at >= 0; at = raw.indexOf(10, at + 1)) if (++n > max) throw new TooManyEvents(max);
}

/** Whether a JSON array's text has more than `max` top-level elements (commas outside strings and inner values). */
function arrayElementsOver(raw: Buffer, max: number): boolean {
  let depth = 0;
  let commas = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && depth === 1 && ++commas >= max) return true;
  }
  return false;
}

/** The packed bytes, expanded; throws (ERR_BUFFER_TOO_LARGE) past `max` bytes. */
export async function inflate(data: Buffer, max = MAX_EXPANDED): Promise<Buffer> {
  const opts = { maxOutputLength: max };
  return data.length <= INLINE / 8 ? zlib.brotliDecompressSync(data, opts) : await decompress(data, opts);
}

/**
 * A payload written as one JSON array (read for compatibility): its elements'
 * texts, or null when the text is not a JSON array (then it is read as lines,
 * which need not all be JSON: see event-lines.ts).
 */
export function arrayLines(text: string): string[] | null {
  if (text[0] !== '[') return null;
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.map((e) => JSON.stringify(e) ?? 'null') : null;
  } catch {
    return null;
  }
}

/** An agent's packed batch, expanded; throws past `max` bytes (as inflate) or `maxEvents` events (TooManyEvents). */
export async function expandBatch(data: Buffer, max = MAX_EXPANDED, maxEvents = MAX_EVENTS): Promise<Buffer> {
  const raw = await inflate(data, max);
  checkEventCount(raw, maxEvents);
  return raw;
}

/** Each event's JSON text, unchecked; throws as expandBatch. */
export async function unpackLines(data: Buffer, max = MAX_EXPANDED, maxEvents = MAX_EVENTS): Promise<string[]> {
  const text = (await expandBatch(data, max, maxEvents)).toString('utf8');
  if (text === '') return [];
  return arrayLines(text) ?? text.split('\n');
}

export async function unpackEvents(data: Buffer): Promise<object[]> {
  const text = (await inflate(data)).toString('utf8');
  if (text === '') return [];
  if (text[0] === '[') {
    const v = JSON.parse(text);
    if (!Array.isArray(v)) throw new Error('packed batch is not a JSON array');
    return v;
  }
  return text.split('\n').map((l) => JSON.parse(l) as object);
}
