import { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { levelDb, type LevelDb } from '../level-db.js';
import { defineStage, BATCH_HWM, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { packEvents } from '../link/codec.js';
import { statusEvent, type StatusAction } from '../link/status.js';
import { SPOOL_SERVICE, type SpoolService, type SpooledBatch } from '../link/services.js';

// The agent's durable buffer. An event counts as accepted only once the
// LevelDB batch holding it is synced; it leaves the spool only when the server
// acknowledged it. Offsets are per event and never reused, so the server can
// deduplicate resends by (agent, spool id, offset).
//
// Keys: 'e' + 12 hex digits of the batch's first offset → u32 count, f64 time,
// packed events (link/codec.ts); 'm:id', 'm:acked', 'm:next', 'm:cursor' (resumable input).

export interface SpoolOptions {
  dir: string;
  /** Cap on stored (compressed) bytes. Default 1 GiB. */
  max_bytes?: number;
  /** Events older than this many seconds are dropped as lost; 0 = no age cap. Default 7 days. */
  max_age?: number;
  /** At the byte cap: 'block' backpressures the input (default); 'drop_oldest' drops and reports a loss event. */
  when_full?: 'block' | 'drop_oldest';
  /** Emit agent-started/stopped and loss events into the spool. Default true. */
  status_events?: boolean;
  /** After the pipeline is asked to stop, wait this long (s) for the server to acknowledge the rest. Default 5. */
  stop_grace?: number;
  /**
   * The input is a file read with resume cursors (the agent sets this for `source = PATH`):
   * remember recent event ids from the first batch on, since the first batches may come
   * before any cursor and a restart then re-reads them.
   */
  resumable?: boolean;
  /**
   * Largest stored entry (packed bytes). An entry travels as one link frame, and
   * the server refuses frames over its max_frame (16 MiB): a bigger entry would
   * be resent forever. Default 15 MiB.
   */
  max_entry_bytes?: number;
}

const DEFAULT_MAX_ENTRY = 15 * 1024 * 1024;

interface Entry {
  first: number;
  count: number;
  size: number;
  time: number;
}

const key = (offset: number) => 'e' + offset.toString(16).padStart(12, '0');
const keyOffset = (k: string) => parseInt(k.slice(1), 16);
const ENTRY_LT = 'f';
const VALUE_HEAD = 12;

type Db = LevelDb;

export class Spool extends Duplex implements SpoolService {
  id = '';
  private db!: Db;
  private entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  private next = 0;
  private acked = -1;
  private readNext = 0;
  private pumping = false;
  private dirty = false;
  private wantRead = false;
  private ending = false;
  private finished = false;
  private gaveUp = false;
  private blocked: (() => void) | null = null;
  private ackWriting = false;
  private ackWanted = false;
  private ageTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly dropOldest: boolean;
  private readonly status: boolean;
  /** Resumable input: ids of the last events written with a cursor (cap RECENT_IDS), and on restart the ones to skip. */
  private recent: string[] = [];
  private skipIds = new Set<string>();
  private skipChecked = 0;

  constructor(
    private readonly opts: SpoolOptions,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, readableHighWaterMark: BATCH_HWM, writableHighWaterMark: BATCH_HWM });
    this.maxBytes = opts.max_bytes ?? 1024 ** 3;
    this.maxAgeMs = (opts.max_age ?? 7 * 86400) * 1000;
    this.dropOldest = opts.when_full === 'drop_oldest';
    this.status = opts.status_events ?? true;
  }

  get dir(): string {
    return path.resolve(this.ctx.baseDir, this.opts.dir);
  }

  async open(): Promise<void> {
    fs.mkdirSync(path.dirname(this.dir), { recursive: true });
    let corrupt: string | undefined;
    try {
      await this.load();
    } catch (e) {
      const err = e as { code?: string; cause?: { code?: string } };
      const isCorrupt = err.code === 'LEVEL_CORRUPTION' || err.cause?.code === 'LEVEL_CORRUPTION' || err instanceof CorruptSpool;
      if (!isCorrupt) throw new SkafeError('SKAFE_SPOOL', `cannot open spool ${this.dir}: ${(e as Error).message}`, { cause: e });
      await this.db?.close().catch(() => {});
      const aside = `${this.dir}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(this.dir, aside);
      corrupt = aside;
      this.ctx.log.error(`spool ${this.dir} is corrupt (${(e as Error).message}); moved aside to ${aside}, starting a fresh spool`, { code: 'SKAFE_SPOOL_CORRUPT' });
      this.ctx.counters.add('spoolCorrupt');
      this.entries = [];
      this.head = this.bytes = this.next = 0;
      this.acked = -1;
      await this.load();
    }
    this.readNext = this.acked + 1;
    if (this.pending() > 0) this.readNext = Math.max(this.readNext, this.entries[this.head]!.first);
    this.ctx.services.set(SPOOL_SERVICE, this);
    const statuses: object[] = [];
    if (corrupt) statuses.push(statusEvent('spool-corrupt', { spool: { id: this.id, moved_to: corrupt } }, 'agent spool was corrupt and was moved aside; its unsent events are lost'));
    statuses.push(statusEvent('agent-started', { spool: { id: this.id, pending_events: this.pendingEvents() } }));
    if (this.status) await this.append(statuses);
    if (this.maxAgeMs > 0) {
      this.ageTimer = setInterval(() => void this.expire(), Math.min(60_000, Math.max(1000, this.maxAgeMs / 4)));
      this.ageTimer.unref();
    }
  }

  private async load(): Promise<void> {
    this.db = await levelDb(this.dir);
    await this.db.open();
    const meta = await this.db.getMany(['m:id', 'm:acked', 'm:next', 'm:recent']);
    if (meta[3]) {
      this.recent = JSON.parse(meta[3].toString()) as string[];
      this.skipIds = new Set(this.recent);
    }
    this.id = meta[0]?.toString() ?? '';
    if (!/^[0-9a-f]{32}$/.test(this.id)) {
      if (meta[0] !== undefined) throw new CorruptSpool('spool identity is unreadable');
      this.id = randomBytes(16).toString('hex');
      await this.db.put('m:id', Buffer.from(this.id), { sync: true });
    }
    this.acked = meta[1] ? Number(meta[1].toString()) : -1;
    this.next = meta[2] ? Number(meta[2].toString()) : 0;
    if (!Number.isSafeInteger(this.acked) || !Number.isSafeInteger(this.next)) throw new CorruptSpool('spool offsets are unreadable');
    for await (const [k, v] of this.db.iterator({ gte: 'e', lt: ENTRY_LT })) {
      if (v.length < VALUE_HEAD || !/^e[0-9a-f]{12}$/.test(k)) throw new CorruptSpool(`spool entry ${k} is malformed`);
      const e: Entry = { first: keyOffset(k), count: v.readUInt32BE(0), time: v.readDoubleBE(4), size: v.length };
      if (e.first + e.count - 1 <= this.acked) continue;
      this.entries.push(e);
      this.bytes += e.size;
      this.next = Math.max(this.next, e.first + e.count);
    }
    this.next = Math.max(this.next, this.acked + 1);
  }

  pending(): number {
    return this.entries.length - this.head;
  }
  pendingEvents(): number {
    let n = 0;
    for (let i = this.head; i < this.entries.length; i++) n += this.entries[i]!.count;
    return n;
  }
  nextOffset(): number {
    return this.next;
  }
  ackedOffset(): number {
    return this.acked;
  }

  /** The last input position committed with the events (resumable file input). */
  async cursor(): Promise<unknown> {
    const v = await this.db.get('m:cursor');
    return v ? JSON.parse(v.toString()) : undefined;
  }

  // Executables of recently spooled events, least recently seen first (Map order):
  // what the link may serve to skafe.fetchFile. Bounded.
  private readonly executables = new Map<string, true>();

  private noteExecutable(exe: string): void {
    if (this.executables.delete(exe) || this.executables.size < MAX_EXECUTABLES) {
      this.executables.set(exe, true);
      return;
    }
    this.executables.delete(this.executables.keys().next().value as string);
    this.executables.set(exe, true);
  }

  reportedExecutable(path: string): boolean {
    return this.executables.has(path);
  }

  /**
   * Pack `slice` into entries that fit max_entry_bytes: halves until they do. A
   * single event that does not fit even alone cannot ever be delivered; it is
   * replaced by an event-too-large alert naming it (counted as lost).
   */
  private async packFitting(slice: unknown[], out: Array<[unknown[], Buffer]>): Promise<void> {
    const max = this.opts.max_entry_bytes ?? DEFAULT_MAX_ENTRY;
    const packed = await packEvents(slice);
    if (packed.length <= max) {
      out.push([slice, packed]);
      return;
    }
    if (slice.length > 1) {
      const half = slice.length >> 1;
      await this.packFitting(slice.slice(0, half), out);
      await this.packFitting(slice.slice(half), out);
      return;
    }
    const id = eventId(slice[0]);
    this.ctx.counters.add('lost');
    this.ctx.counters.add('tooLarge');
    const why = `event ${id ?? '(no id)'} is ${packed.length} bytes packed, over max_entry_bytes ${max}: it cannot cross the link and is replaced by an event-too-large alert`;
    if (this.ctx.counters.firstReport('too-large')) this.ctx.log.warn(why, { code: 'SKAFE_SPOOL' });
    const alert = statusEvent('event-too-large', { lost: 1, original: { id, packed_bytes: packed.length }, spool: { id: this.id } }, why);
    out.push([[alert], await packEvents([alert])]);
  }

  // ---- write side: group commit ----

  override _writev(chunks: Array<{ chunk: unknown[] }>, cb: (e?: Error | null) => void): void {
    const batches = chunks.map((c) => c.chunk).filter((b) => Array.isArray(b));
    const cursor = lastCursor(batches);
    let events = batches.flat();
    for (const b of batches) this.ctx.counters.in += b.length;
    if (this.skipIds.size) events = this.skipResent(events);
    this.append(events, cursor).then(
      () => this.afterWrite(cb),
      (e) => cb(new SkafeError('SKAFE_SPOOL', `spool write failed: ${(e as Error).message}`, { cause: e })),
    );
  }

  override _write(chunk: unknown[], _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  private appending: Promise<void> = Promise.resolve();

  /** Write events (split into MAX 512-event entries) plus metadata in one synced batch; one at a time, in offset order. */
  private append(events: unknown[], cursor?: unknown): Promise<void> {
    const run = this.appending.then(() => this.appendNow(events, cursor));
    this.appending = run.catch(() => {});
    return run;
  }

  private async appendNow(events: unknown[], cursor?: unknown): Promise<void> {
    const ops: Array<{ type: 'put'; key: string; value: Buffer }> = [];
    const added: Entry[] = [];
    const values: Buffer[] = [];
    const time = Date.now();
    for (const ev of events) {
      const exe = (ev as { process?: { executable?: unknown } } | null)?.process?.executable;
      if (typeof exe === 'string') this.noteExecutable(exe);
    }
    const packedSlices: Array<[unknown[], Buffer]> = [];
    for (let i = 0; i < events.length; i += 512) await this.packFitting(events.slice(i, i + 512), packedSlices);
    for (const [slice, packed] of packedSlices) {
      const value = Buffer.allocUnsafe(VALUE_HEAD + packed.length);
      value.writeUInt32BE(slice.length, 0);
      value.writeDoubleBE(time, 4);
      packed.copy(value, VALUE_HEAD);
      const e: Entry = { first: this.next, count: slice.length, size: value.length, time };
      this.next += slice.length;
      ops.push({ type: 'put', key: key(e.first), value });
      added.push(e);
      values.push(value);
    }
    ops.push({ type: 'put', key: 'm:next', value: Buffer.from(String(this.next)) });
    if (cursor !== undefined || this.opts.resumable) {
      // The cursor sits before the oldest still-open event, so a restart re-reads
      // events that completed after it: remember their ids to skip them then.
      for (const ev of events) {
        const id = eventId(ev);
        if (id !== undefined) this.recent.push(id);
      }
      if (this.recent.length > RECENT_IDS) this.recent = this.recent.slice(-RECENT_IDS);
      if (cursor !== undefined) ops.push({ type: 'put', key: 'm:cursor', value: Buffer.from(JSON.stringify(cursor)) });
      ops.push({ type: 'put', key: 'm:recent', value: Buffer.from(JSON.stringify(this.recent)) });
    }
    await this.db.batch(ops, { sync: true });
    for (const e of added) {
      this.entries.push(e);
      this.bytes += e.size;
    }
    this.ctx.counters.add('spooledBytes', added.reduce((n, e) => n + e.size, 0));
    // A reader that has caught up gets the new entries from memory: no read back from disk.
    if (added.length && this.wantRead && !this.pumping && !this.dirty && this.readNext === added[0]!.first) {
      for (let i = 0; i < added.length; i++) {
        const e = added[i]!;
        this.readNext = e.first + e.count;
        this.ctx.counters.out += e.count;
        this.wantRead = this.push([{ first: e.first, count: e.count, data: values[i]!.subarray(VALUE_HEAD) }]);
      }
      return;
    }
    this.kick();
  }

  private skipResent(events: unknown[]): unknown[] {
    const kept = events.filter((ev) => {
      const id = eventId(ev);
      if (id === undefined || !this.skipIds.delete(id)) return true;
      this.ctx.counters.add('resumeSkipped');
      return false;
    });
    // Past the re-read stretch nothing more can match: stop checking.
    this.skipChecked += events.length;
    if (this.skipChecked > 2 * RECENT_IDS) this.skipIds.clear();
    return kept;
  }

  private afterWrite(cb: () => void): void {
    if (this.bytes <= this.maxBytes) return cb();
    if (this.dropOldest) {
      void this.dropFor('spool-overflow', () => this.bytes > this.maxBytes && this.pending() > 1).then(() => cb(), cb);
      return;
    }
    // block: the source waits (and in netlink mode the kernel counts the loss).
    this.ctx.counters.add('blocked');
    if (this.ctx.counters.firstReport('spool-full')) this.ctx.log.warn(`spool full (${this.bytes} bytes ≥ max_bytes ${this.maxBytes}): input blocked until the server acknowledges`, { code: 'SKAFE_SPOOL_FULL' });
    this.blocked = cb;
  }

  private async dropFor(action: StatusAction, more: () => boolean): Promise<void> {
    const ops: Array<{ type: 'del'; key: string }> = [];
    // Entries already read out are on their way (in this stream's buffer, the link's, or at the
    // server with only its ack missing): dropping them from disk does not lose them unless the
    // link fails before the server has them. Counted apart from the unsent ones, which are lost.
    let lost = 0;
    let unacked = 0;
    let upTo = -1;
    while (more()) {
      const e = this.entries[this.head++]!;
      ops.push({ type: 'del', key: key(e.first) });
      this.bytes -= e.size;
      if (e.first < this.readNext) unacked += e.count;
      else lost += e.count;
      upTo = e.first + e.count - 1;
    }
    if (lost + unacked === 0) return;
    this.compact();
    await this.db.batch(ops, { sync: false });
    this.ctx.counters.dropped += lost + unacked;
    if (lost) this.ctx.counters.add('lost', lost);
    if (unacked) this.ctx.counters.add('droppedUnacknowledged', unacked);
    if (this.readNext <= upTo) this.readNext = upTo + 1;
    const why = action === 'spool-overflow' ? `spool over max_bytes ${this.maxBytes}` : `events older than max_age ${this.maxAgeMs / 1000}s`;
    const sent = unacked ? `${unacked} already read out for the link and not yet acknowledged (lost only if the link fails before the server has them)` : '';
    const parts = [lost ? `${lost} unsent events` : '', sent].filter(Boolean).join(' and ');
    this.ctx.problem({ code: 'SKAFE_SPOOL_FULL', message: `${why}: dropped ${parts}` });
    if (this.status) await this.append([statusEvent(action, { lost, ...(unacked ? { unacknowledged: unacked } : {}), spool: { id: this.id, upto_offset: upTo } }, `${why}: dropped ${parts}`)]);
  }

  private async expire(): Promise<void> {
    const limit = Date.now() - this.maxAgeMs;
    if (this.pending() > 1 && this.entries[this.head]!.time < limit) {
      await this.dropFor('spool-expired', () => this.pending() > 1 && this.entries[this.head]!.time < limit).catch((e) => this.destroy(e));
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.ending = true;
    const done = () => {
      this.finished = true;
      this.kick();
      cb();
    };
    const stop = this.status ? this.append([statusEvent('agent-stopped', { spool: { id: this.id } })]) : Promise.resolve();
    stop.then(done, cb);
  }

  // ---- read side: offset order from the last acknowledged ----

  override _read(): void {
    this.wantRead = true;
    void this.pump();
  }

  private kick(): void {
    this.dirty = true;
    if (this.wantRead) void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.destroyed) return;
    this.pumping = true;
    try {
      for (;;) {
        this.dirty = false;
        const got: SpooledBatch[] = [];
        for await (const [k, v] of this.db.iterator({ gte: key(this.readNext), lt: ENTRY_LT, limit: 16 })) {
          got.push({ first: keyOffset(k), count: v.readUInt32BE(0), data: v.subarray(VALUE_HEAD) });
        }
        if (got.length === 0) {
          if (this.finished && (this.pending() === 0 || this.gaveUp)) {
            this.push(null);
            return;
          }
          if (!this.dirty) break;
          continue;
        }
        let more = true;
        for (const b of got) {
          this.readNext = b.first + b.count;
          this.ctx.counters.out += b.count;
          more = this.push([b]);
        }
        this.wantRead = more;
        if (!more) break;
      }
    } catch (e) {
      if (!this.destroyed) this.destroy(new SkafeError('SKAFE_SPOOL', `spool read failed: ${(e as Error).message}`, { cause: e }));
    } finally {
      this.pumping = false;
    }
  }

  // ---- acknowledgements from the link ----

  ack(offset: number): void {
    if (offset <= this.acked) return;
    this.acked = offset;
    this.ctx.counters.add('acked');
    // Acks come per batch; persisting them every 20 ms is plenty (a lost ack is only a deduplicated resend).
    if (this.ackTimer || this.ackWriting) {
      this.ackWanted = true;
      return;
    }
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      void this.persistAck();
    }, this.blocked || this.finished ? 0 : 20);
  }

  private async persistAck(): Promise<void> {
    if (this.ackWriting) {
      this.ackWanted = true;
      return;
    }
    this.ackWriting = true;
    try {
      do {
        this.ackWanted = false;
        const ops: Array<{ type: 'del' | 'put'; key: string; value?: Buffer }> = [];
        while (this.pending() > 0) {
          const e = this.entries[this.head]!;
          if (e.first + e.count - 1 > this.acked) break;
          ops.push({ type: 'del', key: key(e.first) });
          this.bytes -= e.size;
          this.head++;
        }
        this.compact();
        ops.push({ type: 'put', key: 'm:acked', value: Buffer.from(String(this.acked)) });
        // Not synced: losing it on a crash only means a resend the server deduplicates.
        if (!this.db.status.startsWith('open')) return;
        await this.db.batch(ops as never, { sync: false });
        if (this.blocked && this.bytes <= this.maxBytes) {
          const cb = this.blocked;
          this.blocked = null;
          cb();
        }
        if (this.finished) this.kick();
      } while (this.ackWanted);
    } catch (e) {
      if (!this.destroyed) this.destroy(new SkafeError('SKAFE_SPOOL', `spool ack write failed: ${(e as Error).message}`, { cause: e }));
    } finally {
      this.ackWriting = false;
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearInterval(this.ageTimer);
    clearTimeout(this.ackTimer);
    if (this.ctx.services.get(SPOOL_SERVICE) === this) this.ctx.services.delete(SPOOL_SERVICE);
    const close = this.db ? this.db.close() : Promise.resolve();
    close.then(() => cb(err), () => cb(err));
  }

  /** Abort-aware: after stop, wait `stop_grace` seconds for acks, then end anyway. */
  armStop(): void {
    this.ctx.signal.addEventListener(
      'abort',
      () => {
        setTimeout(() => {
          if (this.pending() > 0) this.ctx.log.warn(`stopping with ${this.pendingEvents()} events unacknowledged; they stay in the spool for the next start`);
          this.gaveUp = true;
          this.kick();
        }, (this.opts.stop_grace ?? 5) * 1000).unref();
      },
      { once: true },
    );
  }
}

class CorruptSpool extends Error {}

// Distinct executables remembered for skafe.fetchFile (see noteExecutable).
const MAX_EXECUTABLES = 4096;

/** How many recent event ids resumable input remembers (the re-read stretch after a restart). */
const RECENT_IDS = 2048;

function eventId(ev: unknown): string | undefined {
  const id = (ev as { event?: { id?: unknown } })?.event?.id;
  return typeof id === 'string' ? id : undefined;
}

/** The resume cursor committed with the spool's events, read before the pipeline starts (the file source needs it first). */
export async function readSpoolCursor(dir: string): Promise<{ path?: string; dev: number; ino: number; offset: number } | undefined> {
  if (!fs.existsSync(dir)) return undefined;
  const db = await levelDb(dir);
  try {
    await db.open();
    const v = await db.get('m:cursor');
    return v ? JSON.parse(v.toString()) : undefined;
  } catch {
    return undefined; // a corrupt spool is handled (moved aside) when the spool stage opens it
  } finally {
    await db.close().catch(() => {});
  }
}

function lastCursor(batches: unknown[][]): unknown {
  for (let i = batches.length - 1; i >= 0; i--) {
    const c = (batches[i] as { cursor?: unknown }).cursor;
    if (c !== undefined) return c;
  }
  return undefined;
}

export default defineStage<SpoolOptions>({
  kind: 'transform',
  use: 'spool',
  description: 'durable LevelDB spool: events are synced before they count as accepted, and leave only when the server acknowledged them',
  schema: {
    type: 'object',
    properties: {
      dir: { type: 'string', minLength: 1 },
      max_bytes: { type: 'integer', minimum: 1 },
      max_age: { type: 'number', minimum: 0 },
      when_full: { enum: ['block', 'drop_oldest'] },
      status_events: { type: 'boolean' },
      stop_grace: { type: 'number', minimum: 0 },
      resumable: { type: 'boolean' },
      max_entry_bytes: { type: 'integer', minimum: 1024, maximum: 16 * 1024 * 1024 - 64 },
    },
    required: ['dir'],
    additionalProperties: false,
  },
  async create(options, ctx) {
    const s = new Spool(options, ctx);
    await s.open();
    s.armStop();
    return s;
  },
});
