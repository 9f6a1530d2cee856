import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { defineStage, BATCH_HWM, MAX_BATCH, markEncoded, markEncodedBytes, setBufferOwner, setRecycle, type Batch, type StageContext } from '../stage.js';
import { packEvents, type WorkerReply, type WorkerRequest } from './coalesce-worker.js';
import { takeBuffer, giveBuffer, roomFor, OutputSize } from '../buffer-pool.js';
import { AUDIT_EOE, type AuditRecord } from '../audit/record.js';
import { RawRecord } from '../audit/raw-record.js';
import { interpret } from '../audit/interpret.js';
import type { AuditEvent } from '../audit/event.js';
import { getCursor, setCursor, type Cursor } from '../sources/text-records.js';
import { workerExecArgv } from '../worker-exec-argv.js';

export interface CoalesceOptions {
  /** An open event completes once this many records of other events have arrived after its last one. */
  lookahead?: number;
  /** …or once a record this much later (event time, ms) has arrived. */
  settleMs?: number;
  /** …or after this long (wall clock) without a record for it: live sources go quiet. */
  idleTimeoutMs?: number;
  /** Open events held at most; past it the oldest is completed early and counted. */
  maxOpen?: number;
  /** Records one event may hold; further records are dropped and counted. */
  maxRecords?: number;
  /**
   * Worker threads that interpret and serialize events, when the next stage
   * takes serialized events (jsonl, stdout, stderr). `auto`: one per core.
   * Otherwise events are interpreted on the main thread.
   */
  workers?: number | 'auto';
}

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lookahead: { type: 'integer', minimum: 1, default: 1000 },
    settleMs: { type: 'integer', minimum: 0, default: 2000 },
    idleTimeoutMs: { type: 'integer', minimum: 10, default: 1000 },
    maxOpen: { type: 'integer', minimum: 1, default: 10000 },
    maxRecords: { type: 'integer', minimum: 1, default: 10000 },
    workers: { anyOf: [{ type: 'integer', minimum: 0, maximum: 64 }, { const: 'auto' }], default: 'auto' },
  },
};

// Batches in flight per worker: enough to keep each busy while the main thread reads.
const IN_FLIGHT_PER_WORKER = 2;
// Every DETACH_EVERY input batches, raw records of events begun DETACH_AFTER batches ago are copied out of their chunks.
const DETACH_EVERY = 8;
const DETACH_AFTER = 8;
// Fewer completed events than this, with nothing in flight, are serialized on the main thread.
const INLINE_BELOW = 64;

/**
 * Events whose records are all RawRecords, as their lines' bytes (copied
 * into one pooled buffer) and an index: per event its record count, then each
 * line's start and end. Undefined when any record was parsed here (a line the
 * native scanner left to JavaScript): such batches go as packed records.
 */
function rawLines(events: AuditRecord[][]): WorkerRequest['raw'] {
  let size = 0;
  let records = 0;
  for (const recs of events) {
    for (const r of recs) {
      if (!(r instanceof RawRecord)) return undefined;
      size += r.end - r.start;
    }
    records += recs.length;
  }
  const bytes = Buffer.from(takeBuffer(size) ?? roomFor(size));
  const index = new Int32Array(events.length + 2 * records);
  let at = 0;
  let pos = 0;
  for (const recs of events) {
    index[at++] = recs.length;
    for (const r of recs as RawRecord[]) {
      index[at++] = pos;
      pos += r.raw.copy(bytes, pos, r.start, r.end);
      index[at++] = pos;
      r.release();
    }
  }
  return { bytes: bytes.buffer as ArrayBuffer, index, events: events.length };
}

/** Interprets and serializes events in worker threads, handing results back in order. */
class EncoderPool {
  private readonly workers: Worker[];
  private next = 0;
  private seq = 0;
  private delivered = 0;
  private readonly replies = new Map<number, WorkerReply & { cursor?: Cursor }>();
  private readonly cursors = new Map<number, Cursor | undefined>();
  private waiters: Array<() => void> = [];
  readonly maxInFlight: number;

  constructor(
    n: number,
    private readonly deliver: (reply: WorkerReply, cursor: Cursor | undefined) => void,
    private readonly fail: (err: Error) => void,
    private readonly bytes: boolean,
  ) {
    this.workers = Array.from({ length: n }, () => {
      // A small young generation: these isolates make short-lived garbage in bulk, and RSS is a target.
      const w = new Worker(new URL('./coalesce-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 12 }, execArgv: workerExecArgv() });
      w.on('message', (m: WorkerReply) => this.reply(m));
      w.on('error', (err) => this.fail(err));
      return w;
    });
    this.maxInFlight = n * IN_FLIGHT_PER_WORKER;
  }

  // JSON bytes per event: the size of spare buffers to send.
  private readonly outputSize = new OutputSize();

  get inFlight(): number {
    return this.seq - this.delivered;
  }

  send(events: AuditRecord[][], cursor: Cursor | undefined): void {
    const seq = this.seq++;
    this.cursors.set(seq, cursor);
    // The smallest pooled buffer the batch's JSON will fit in: the pool also holds other stages' buffers.
    const spare = this.bytes ? takeBuffer(this.outputSize.expect(events.length)) : undefined;
    const transfer: ArrayBuffer[] = spare ? [spare] : [];
    const raw = this.bytes ? rawLines(events) : undefined;
    if (raw !== undefined) transfer.push(raw.bytes, raw.index.buffer as ArrayBuffer);
    const request: WorkerRequest = raw !== undefined ? { seq, flat: [], raw, bytes: true, spare } : { seq, flat: packEvents(events), bytes: this.bytes, spare };
    this.workers[this.next]!.postMessage(request, transfer);
    this.next = (this.next + 1) % this.workers.length;
  }

  private reply(m: WorkerReply): void {
    if (m.free) giveBuffer(m.free);
    if (m.bytes !== undefined) this.outputSize.observe(m.bytes.byteLength, m.count);
    this.replies.set(m.seq, m);
    // Workers finish out of order; results leave in the order they were sent.
    for (let r = this.replies.get(this.delivered); r; r = this.replies.get(this.delivered)) {
      this.replies.delete(this.delivered);
      const cursor = this.cursors.get(this.delivered);
      this.cursors.delete(this.delivered);
      this.delivered++;
      this.deliver(r, cursor);
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once fewer than `limit` batches are in flight. */
  whenBelow(limit: number, f: () => void): void {
    if (this.inFlight < limit) f();
    else this.waiters.push(() => this.whenBelow(limit, f));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

interface OpenEvent {
  records: AuditRecord[];
  /** Event time in ms, for settleMs. */
  time: number;
  /** Sequence number (records seen) of its latest record, for lookahead. */
  lastSeq: number;
  /** Wall-clock ms of its latest record, for idleTimeoutMs. */
  lastWall: number;
  /** Input batch its first record came in, for resume cursors. */
  batchNo: number;
}

/**
 * Records → events: every record sharing one `msg=audit(sec.ms:serial)` (and
 * node) becomes one event, whatever the record types. auditd's log has no EOE
 * records, so besides EOE an event completes once the input has clearly moved
 * on (lookahead records or settleMs of event time later), after idleTimeoutMs
 * of silence, or at end of input. The open-event map is the only state and
 * it is capped (maxOpen).
 */
export class Coalescer extends Transform {
  private readonly open = new Map<string, OpenEvent>();
  private seq = 0;
  private newest = 0;
  private out: AuditEvent[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private batchNo = 0;
  /** Wall-clock ms of the latest input batch. */
  private lastInput = Date.now();
  /** Resume positions of recent input batches, oldest first; pruned to what open events still need. */
  private readonly cursors: Array<{ batchNo: number; cursor: Cursor }> = [];
  private lastCursor: Cursor | undefined;
  private readonly pool: EncoderPool | undefined;
  /** Completed events waiting to be sent to the pool. */
  private ready: AuditRecord[][] = [];
  private currentId = '';
  private readonly onProblem = (message: string) =>
    this.ctx.problem({ code: 'SKAFE_MALFORMED_RECORD', message: `event ${this.currentId}: ${message}` });

  constructor(
    private readonly ctx: StageContext,
    private readonly o: Required<CoalesceOptions>,
  ) {
    super({ objectMode: true, readableHighWaterMark: BATCH_HWM, writableHighWaterMark: BATCH_HWM });
    const n = o.workers === 'auto' ? os.availableParallelism() : o.workers;
    if ((ctx.encodedOutput || ctx.encodedBytesOutput) && n > 0) {
      this.pool = new EncoderPool(
        n,
        (reply, cursor) => {
          for (const [id, message] of reply.problems) {
            this.currentId = id;
            this.onProblem(message);
          }
          ctx.counters.out += reply.count;
          if (reply.spare) giveBuffer(reply.spare);
          const bytes = reply.bytes;
          const b = bytes ? markEncodedBytes(bytes, reply.count) : markEncoded(reply.lines!);
          if (bytes) {
            // the reply's buffer is this batch's alone; once written it carries the next reply
            setBufferOwner(b);
            setRecycle(b, (returned) => giveBuffer(returned ?? (bytes.buffer as ArrayBuffer)));
          }
          if (cursor) setCursor(b, cursor);
          this.push(b);
        },
        (err) => this.destroy(err),
        ctx.encodedBytesOutput === true,
      );
    }
    this.idleTimer = setInterval(() => this.expireIdle(), Math.max(10, o.idleTimeoutMs >> 1));
    this.idleTimer.unref();
  }

  override _transform(batch: Batch<AuditRecord>, _enc: BufferEncoding, done: TransformCallback): void {
    const batchNo = ++this.batchNo;
    const now = Date.now();
    this.lastInput = now;
    const counters = this.ctx.counters;
    counters.in += batch.length;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      const seq = ++this.seq;
      const key = r.node === undefined ? r.id : r.node + ' ' + r.id;
      const time = r.sec * 1000 + r.msec;
      if (time > this.newest) this.newest = time;
      let ev = this.open.get(key);
      if (r.typeNum === AUDIT_EOE) {
        if (ev) {
          this.open.delete(key);
          this.complete(ev);
        }
        continue;
      }
      if (ev === undefined) {
        if (this.open.size >= this.o.maxOpen) this.evictOldest();
        ev = { records: [r], time, lastSeq: seq, lastWall: now, batchNo };
        this.open.set(key, ev);
      } else if (ev.records.length < this.o.maxRecords) {
        ev.records.push(r);
        ev.lastSeq = seq;
        ev.lastWall = now;
      } else {
        counters.dropped++;
        if (counters.firstReport('maxRecords')) {
          this.ctx.log.warn(`event ${r.id} has more than ${this.o.maxRecords} records; the rest are dropped (counted)`);
        }
      }
    }
    this.expireSettled();
    if (batchNo % DETACH_EVERY === 0) this.detachLongOpen(batchNo);
    this.trackCursor(batchNo, getCursor(batch));
    this.flushOut();
    if (this.pool) this.pool.whenBelow(this.pool.maxInFlight, () => done());
    else done();
  }

  override _flush(done: TransformCallback): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    for (const ev of this.open.values()) this.complete(ev);
    this.open.clear();
    this.cursors.length = 0;
    this.flushOut();
    const pool = this.pool;
    if (!pool) return done();
    pool.whenBelow(1, () => {
      pool.close().then(() => done(), done);
    });
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    if (this.pool) this.pool.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }

  /** Complete, in order of first arrival, the events the input has clearly moved past. */
  private expireSettled(): void {
    const seqLimit = this.seq - this.o.lookahead;
    const timeLimit = this.newest - this.o.settleMs;
    for (const [key, ev] of this.open) {
      if (ev.lastSeq > seqLimit && ev.time >= timeLimit) break;
      this.open.delete(key);
      this.complete(ev);
    }
  }

  /**
   * A RawRecord keeps its whole source chunk (up to the file's chunkSize)
   * alive: an event open for long must not hold one chunk per record. Events
   * begun DETACH_AFTER input batches ago get their raw records copied out.
   * Open events are in first-arrival order: the walk stops at the first young one.
   */
  private detachLongOpen(batchNo: number): void {
    for (const ev of this.open.values()) {
      if (ev.batchNo > batchNo - DETACH_AFTER) break;
      const recs = ev.records;
      for (let i = 0; i < recs.length; i++) {
        const r = recs[i]!;
        if (r instanceof RawRecord && !r.detached) recs[i] = r.detach();
      }
    }
  }

  /**
   * A quiet live source: complete what has waited idleTimeoutMs. Only when the
   * input really is quiet — no record for that long — and downstream is taking
   * what we have: a pipeline held up by backpressure must not split events.
   */
  private expireIdle(): void {
    if (this.open.size === 0 || this.writableEnded) return;
    const now = Date.now();
    if (now - this.lastInput < this.o.idleTimeoutMs) return;
    if (this.readableLength >= this.readableHighWaterMark || (this.pool && this.pool.inFlight > 0)) return;
    const limit = now - this.o.idleTimeoutMs;
    let n = 0;
    for (const [key, ev] of this.open) {
      if (ev.lastWall > limit) continue;
      this.open.delete(key);
      this.complete(ev);
      n++;
    }
    if (n) this.flushOut();
  }

  private evictOldest(): void {
    const first = this.open.entries().next();
    if (first.done) return;
    const [key, ev] = first.value;
    this.open.delete(key);
    this.ctx.counters.add('evicted');
    if (this.ctx.counters.firstReport('evicted')) {
      this.ctx.log.warn(
        `more than ${this.o.maxOpen} events open at once; completing the oldest early (SKAFE_EVENT_EVICTED, counted as "evicted")`,
      );
    }
    this.complete(ev);
  }

  private complete(ev: OpenEvent): void {
    if (this.pool) {
      this.ready.push(ev.records);
      return;
    }
    this.currentId = ev.records[0]!.id;
    this.out.push(interpret(ev.records, this.onProblem));
  }

  private flushOut(): void {
    if (this.pool) {
      if (this.ready.length === 0) return;
      const cursor = this.resumeCursor();
      // A trickle (a live source at a normal rate): a thread hop per handful of events costs
      // more than the work, so serialize here — unless earlier batches are still out, to keep order.
      if (this.pool.inFlight === 0 && this.ready.length < INLINE_BELOW) {
        const lines = this.ready.map((recs) => {
          this.currentId = recs[0]!.id;
          return JSON.stringify(interpret(recs, this.onProblem));
        });
        this.ready = [];
        this.ctx.counters.out += lines.length;
        const b = this.ctx.encodedOutput ? markEncoded(lines) : markEncodedBytes(Buffer.from(lines.join('\n') + '\n'), lines.length);
        if (cursor) setCursor(b, cursor);
        this.push(b);
        return;
      }
      for (let i = 0; i < this.ready.length; i += MAX_BATCH) this.pool.send(this.ready.slice(i, i + MAX_BATCH), cursor);
      this.ready = [];
      return;
    }
    if (this.out.length === 0) return;
    const c = this.ctx.counters;
    const cursor = this.resumeCursor();
    // Bound the size of what we hand on, as every stage does.
    while (this.out.length > 0) {
      const chunk = this.out.length <= 512 ? this.out : this.out.splice(0, 512);
      if (chunk === this.out) this.out = [];
      c.out += chunk.length;
      if (cursor) setCursor(chunk, cursor);
      this.push(chunk);
    }
  }

  // Re-reading from here loses nothing: just before the first record of the oldest open event.
  private trackCursor(batchNo: number, cursor: Cursor | undefined): void {
    if (!cursor) return;
    this.lastCursor = cursor;
    this.cursors.push({ batchNo, cursor });
    let oldest = Infinity;
    for (const ev of this.open.values()) {
      oldest = ev.batchNo;
      break; // Map order is first-arrival order: the first is the oldest.
    }
    // Keep the newest entry older than the oldest open event's batch, and everything after it.
    while (this.cursors.length > 1 && this.cursors[1]!.batchNo < oldest) this.cursors.shift();
    if (this.cursors.length > this.o.maxOpen + 16) this.cursors.splice(0, this.cursors.length - this.o.maxOpen - 16);
  }

  private resumeCursor(): Cursor | undefined {
    if (!this.lastCursor) return undefined;
    const first = this.open.values().next();
    if (first.done) return this.lastCursor;
    const oldest = first.value.batchNo;
    const before = this.cursors.length && this.cursors[0]!.batchNo < oldest ? this.cursors[0]!.cursor : undefined;
    return before;
  }
}

export default defineStage<CoalesceOptions>({
  kind: 'transform',
  // the file and stdin sources then hand over lines as bytes with only their headers read (src/audit/raw-record.ts)
  acceptsRawRecords: true,
  use: 'coalesce',
  description: 'records → one event per kernel event (ECS/Auditbeat layout), completed on EOE, lookahead, settle time, idle time or end of input',
  schema,
  create(options, ctx: StageContext) {
    return new Coalescer(ctx, {
      lookahead: options.lookahead ?? 1000,
      settleMs: options.settleMs ?? 2000,
      idleTimeoutMs: options.idleTimeoutMs ?? 1000,
      maxOpen: options.maxOpen ?? 10000,
      maxRecords: options.maxRecords ?? 10000,
      workers: options.workers ?? 'auto',
    });
  },
});
