import type { Readable, Writable, Duplex } from 'node:stream';
import type { ErrorCode } from './errors.js';

// The wire unit between stages is a *batch*: an array of items, carried as one
// object-mode chunk. A per-item stream hop costs about a microsecond; at a
// million records a second that alone would eat the budget, so stages pass
// arrays (as Vector passes EventArrays). highWaterMark counts batches, and every
// batch has at most MAX_BATCH items, so buffering stays bounded.
export type Batch<T = unknown> = T[];
export const MAX_BATCH = 512;
export const BATCH_HWM = 8;

export type StageKind = 'source' | 'transform' | 'sink';

/**
 * A batch whose items are events already serialized as JSON text (one string
 * per event). Only a stage whose definition says `acceptsEncoded` is ever given
 * one: the pipeline sets `ctx.encodedOutput` on the stage before it, which may
 * then do the serializing in its worker threads (coalesce does).
 */
export const ENCODED = Symbol.for('skafe.encoded');
export function markEncoded<T>(batch: Batch<T>): Batch<T> {
  (batch as unknown as Record<symbol, boolean>)[ENCODED] = true;
  return batch;
}
export function isEncoded(batch: Batch<unknown>): batch is Batch<string> {
  return (batch as unknown as Record<symbol, boolean>)[ENCODED] === true;
}

/**
 * The cheapest form for sinks that only write bytes (`acceptsEncodedBytes`):
 * the whole batch as JSON-lines bytes, made and transferred by a worker thread.
 * The array has one empty slot per event so `length` still counts events.
 */
export const ENCODED_BYTES = Symbol.for('skafe.encodedBytes');
export function markEncodedBytes(bytes: Uint8Array, count: number): Batch<never> {
  const b = new Array<never>(count);
  (b as unknown as Record<symbol, Uint8Array>)[ENCODED_BYTES] = bytes;
  return b;
}
export function encodedBytes(batch: Batch<unknown>): Uint8Array | undefined {
  return (batch as unknown as Record<symbol, Uint8Array | undefined>)[ENCODED_BYTES];
}

/**
 * Marks on an ENCODED_BYTES batch. RECYCLE: called once the batch's bytes
 * are written and nothing will read them again (sinks call recycleBatch), so
 * the buffer can be filled again (src/buffer-pool.ts). BUFFER_OWNER: the batch
 * is the only user of its bytes' whole buffer, so a stage may transfer the
 * buffer to a worker rather than copy the bytes. A stage that did so and gets
 * the buffer back recycles the batch with it (`returned`): the transfer left
 * the batch's own handle empty, and whoever made the batch may want its bytes
 * again (a feed that sends the same batches over and over need not copy them).
 */
const RECYCLE = Symbol.for('skafe.recycle');
const BUFFER_OWNER = Symbol.for('skafe.bufferOwner');

export type Recycle = (returned?: ArrayBuffer) => void;

export function setRecycle(batch: Batch<unknown>, recycle: Recycle): void {
  (batch as unknown as Record<symbol, unknown>)[RECYCLE] = recycle;
}

/**
 * The batch's bytes are written: hand its buffer back (at most once).
 * `returned`: the buffer as it came back from a thread it was transferred to.
 * False when the batch has no recycle mark (or was recycled already).
 */
export function recycleBatch(batch: Batch<unknown>, returned?: ArrayBuffer): boolean {
  const b = batch as unknown as Record<symbol, Recycle | undefined>;
  const f = b[RECYCLE];
  if (f === undefined) return false;
  b[RECYCLE] = undefined;
  f(returned);
  return true;
}

export function setBufferOwner(batch: Batch<unknown>): void {
  (batch as unknown as Record<symbol, boolean>)[BUFFER_OWNER] = true;
}

export function isBufferOwner(batch: Batch<unknown>): boolean {
  return (batch as unknown as Record<symbol, boolean | undefined>)[BUFFER_OWNER] === true;
}

/**
 * The events of JSON-lines bytes as one string each (JSON text never holds a
 * raw newline). Line by line: decoding the whole batch first would make one
 * large string, which only a full collection frees.
 */
export function splitJsonLines(bytes: Uint8Array): string[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lines: string[] = [];
  let from = 0;
  while (from < buf.length) {
    let end = buf.indexOf(10, from);
    if (end < 0) end = buf.length;
    lines.push(buf.toString('utf8', from, end));
    from = end + 1;
  }
  return lines;
}

/** An ENCODED_BYTES batch as an encoded batch of strings (for a stage that needs the text here). */
export function decodeEncodedBytes(batch: Batch<unknown>): Batch<string> {
  const bytes = encodedBytes(batch);
  return bytes === undefined ? (batch as Batch<string>) : markEncoded(splitJsonLines(bytes));
}

/**
 * The buffer to hand to another thread for `bytes` (an ENCODED_BYTES batch's),
 * without copying when the batch may give it away: its bytes start the buffer
 * and it owns all of it (or the view covers all of it). Otherwise a copy:
 * transferring a shared buffer would take it from every other view, such as
 * the other pieces of one worker reply.
 */
export function transferable(bytes: Uint8Array, owner: boolean): { buffer: ArrayBuffer; length: number } {
  const b = bytes.buffer;
  if (b instanceof ArrayBuffer && bytes.byteOffset === 0 && (owner || bytes.byteLength === b.byteLength)) return { buffer: b, length: bytes.byteLength };
  // Not bytes.slice(): on a Buffer that is a view, and a small Buffer's buffer is Node's
  // shared 8 KB pool, which the transfer would take from every Buffer made from it.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return { buffer: copy.buffer, length: bytes.byteLength };
}

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** The counters every stage keeps (Vector's component telemetry). */
export class StageCounters {
  in = 0;
  out = 0;
  dropped = 0;
  malformed = 0;
  /** stage-specific counters: bytesRead, evicted, lost, … */
  readonly extra: Record<string, number> = Object.create(null);
  private readonly reported = new Set<string>();

  add(name: string, n = 1): void {
    this.extra[name] = (this.extra[name] ?? 0) + n;
  }

  /** True the first time a given problem key is seen, so each kind of problem is logged once. */
  firstReport(key: string): boolean {
    if (this.reported.has(key)) return false;
    // Bounded: past 64 distinct keys we stop logging new kinds, counters still count.
    if (this.reported.size >= 64) return false;
    this.reported.add(key);
    return true;
  }

  toJSON(): Record<string, number> {
    return { in: this.in, out: this.out, dropped: this.dropped, malformed: this.malformed, ...this.extra };
  }
}

/** A per-record problem: counted, reported once per kind, never thrown. */
export interface RecordProblem {
  code: ErrorCode;
  message: string;
  file?: string;
  line?: number;
}

export interface StageContext {
  /** Relative paths in options resolve against this directory (the definition file's). */
  baseDir: string;
  /** Position and name of the stage, for messages: `stage 2 (coalesce)`. */
  index: number;
  name: string;
  counters: StageCounters;
  log: Logger;
  /** Aborted when the pipeline is asked to stop: sources end their input, the rest drains. */
  signal: AbortSignal;
  /** Report a per-record problem: counts it as malformed and logs the first of each kind. */
  problem(p: RecordProblem): void;
  /**
   * Side channels between stages of one pipeline, by name: the spool's
   * acknowledgement hook that the link calls, the server queue's release hook
   * that sinks call. Registered by the stage that owns the service.
   */
  services: Map<string, unknown>;
  /** The next stage takes encoded batches (see ENCODED): this stage may emit them. */
  encodedOutput?: boolean;
  /** The next stage takes encoded-bytes batches (see ENCODED_BYTES): this stage may emit them. */
  encodedBytesOutput?: boolean;
  /**
   * The next stage takes records whose lines are still bytes (RawRecord,
   * src/audit/raw-record.ts): text sources then leave decoding and parsing
   * to it. Set by the pipeline from the next stage's `acceptsRawRecords`.
   */
  rawRecordsOutput?: boolean;
}

export type StageStream = Readable | Duplex | Writable;

export interface StageDefinition<O = any> {
  kind: StageKind;
  /** The `use` name in definition files: sources and sinks are nouns, transforms verbs. */
  use: string;
  description: string;
  /** JSON Schema of the options object (without `use`/`id`). */
  schema: Record<string, unknown>;
  /** Takes batches of pre-serialized JSON text as well as objects (sinks that only write them out). */
  acceptsEncoded?: boolean;
  /** Also takes ENCODED_BYTES batches: it only writes them out. */
  acceptsEncodedBytes?: boolean;
  /** Takes RawRecord items among its records (see StageContext.rawRecordsOutput). */
  acceptsRawRecords?: boolean;
  create(options: O, ctx: StageContext): StageStream | Promise<StageStream>;
}

export function defineStage<O>(def: StageDefinition<O>): StageDefinition<O> {
  return def;
}

/**
 * Copy the marks a batch carries outside its items (non-enumerable `cursor`
 * and `release`, see sources/text-records.ts and link/services.ts) onto a
 * batch made from it, so stages that filter or copy keep them.
 */
export function carryMarks<T>(from: Batch<unknown>, to: Batch<T>): Batch<T> {
  for (const k of ['cursor', 'release'] as const) {
    const v = (from as unknown as Record<string, unknown>)[k];
    if (v !== undefined) Object.defineProperty(to, k, { value: v, enumerable: false, configurable: true, writable: true });
  }
  return to;
}

/** A batch that must travel even when empty: it carries a mark a later stage needs. */
export function hasMarks(batch: Batch<unknown>): boolean {
  const b = batch as unknown as Record<string, unknown>;
  return b.cursor !== undefined || b.release !== undefined;
}
