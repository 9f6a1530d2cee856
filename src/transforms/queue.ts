import { Duplex } from 'node:stream';
import fs from 'node:fs';
import path from 'node:path';
import { levelDb, type LevelDb } from '../level-db.js';
import { defineStage, BATCH_HWM, MAX_BATCH, markEncoded, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { packEvents, packLines, unpackLines, MAX_EVENTS, MAX_EXPANDED } from '../link/codec.js';
import { unpackCheckedLines, malformedEvent, whyNotObject, isBlank, SPLICE, MERGE, type CheckedLines } from '../link/event-lines.js';
import { DELIVERED } from '../sinks/serialize.js';
import {
  QUEUE_SERVICE,
  setRelease,
  getRelease,
  type Delivery,
  type QueueService,
  type AcksService,
  type SinkPosition,
} from '../link/services.js';

// The server's durable queue. A batch from an agent is acknowledged only after
// it is synced here; the per-(agent, spool) high-water offset is written in the
// same LevelDB batch, so a resend after any crash is recognised and dropped.
// Entries leave only when the sink reports them flushed (end-to-end ack).
// A file sink reports where its file ended at that point; on restart the file
// is cut back to that size, so what was written but not yet released is written
// again exactly once rather than twice.
//
// Keys: 'q' + 12 hex seq → u32 header length, header JSON {agent, spool, first, count}, packed events;
// 'h' + agent + '\0' + spool → high-water offset; 'm:released' → seq; 'm:pos' → SinkPosition[].

export interface QueueOptions {
  dir: string;
  /** Unreleased bytes above which the queue stops taking input (and agents stop getting credits). Default 1 GiB. */
  max_bytes?: number;
  /**
   * The file(s) the sink appends to (the event log). Their size is taken at each
   * flush report and stored with the release, so a restart after a crash cuts off
   * what was written but not released: the event log gets each event exactly once.
   */
  sink_files?: string[];
  /** Bytes an agent's batch may expand to (default 256 MiB, codec.ts MAX_EXPANDED): a batch made to expand further is dropped and reported. */
  max_expanded_bytes?: number;
  /** Events an agent's batch may hold (default 65,536, codec.ts MAX_EVENTS; agents send at most 512): a batch holding more is dropped and reported. */
  max_batch_events?: number;
}

const MAX_UNRELEASED_POSITIONS = 100_000;

const qkey = (seq: number) => 'q' + seq.toString(16).padStart(12, '0');
const QEND = 'r';

interface Header {
  agent: string;
  spool: string;
  first: number;
  count: number;
}

/** dev and ino of a sink file that did not exist when its position was stored. */
const ABSENT = -1;

/** Where a sink file ends now; undefined when it does not exist (yet). */
function filePosition(file: string): SinkPosition | undefined {
  try {
    const st = fs.statSync(file);
    return { path: file, dev: st.dev, ino: st.ino, size: st.size };
  } catch {
    return undefined;
  }
}

export class Queue extends Duplex implements QueueService, AcksService {
  private db!: LevelDb;
  private readonly hw = new Map<string, number>();
  private nextSeq = 0;
  private readSeq = 0;
  private released = -1;
  private releasing = false;
  private releaseWanted = false;
  private positions = new Map<string, SinkPosition>();
  /**
   * Per sink file, where it ended after each batch it wrote that is not
   * released yet, oldest first. A release of seq R sets each file's position
   * to where that file ended after batch R: with a fan-out to two logs, one is
   * ahead of the other, and cutting both at their own R keeps each exact.
   */
  private readonly unreleasedPositions = new Map<string, Array<{ seq: number; pos: SinkPosition }>>();
  /** Sink files whose sinks report their own positions (never stat'ed). */
  private readonly reporting = new Set<string>();
  private sizes = new Map<number, number>();
  private bytes = 0;
  private blocked: (() => void) | null = null;
  private pumping = false;
  private dirty = false;
  private wantRead = false;
  private inputDone = false;
  private readonly maxBytes: number;

  constructor(
    private readonly opts: QueueOptions,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, readableHighWaterMark: BATCH_HWM, writableHighWaterMark: BATCH_HWM });
    this.maxBytes = opts.max_bytes ?? 1024 ** 3;
    this.maxExpanded = opts.max_expanded_bytes ?? MAX_EXPANDED;
    this.maxEvents = opts.max_batch_events ?? MAX_EVENTS;
  }

  private readonly maxExpanded: number;
  private readonly maxEvents: number;

  /** Why a packed batch does not unpack, for the server log. */
  private unpackError(e: unknown): string {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return `it expands past max_expanded_bytes ${this.maxExpanded}`;
    if (code === 'SKAFE_TOO_MANY_EVENTS') return `it holds more events than max_batch_events ${this.maxEvents}`;
    return (e as Error).message;
  }

  async open(): Promise<void> {
    const dir = path.resolve(this.ctx.baseDir, this.opts.dir);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    this.db = await levelDb(dir);
    try {
      await this.db.open();
    } catch (e) {
      throw new SkafeError('SKAFE_QUEUE', `cannot open queue ${dir}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}`, { cause: e });
    }
    for await (const [k, v] of this.db.iterator({ gte: 'h', lt: 'i' })) this.hw.set(k.slice(1), Number(v.toString()));
    const [rel, pos] = await this.db.getMany(['m:released', 'm:pos']);
    this.released = rel ? Number(rel.toString()) : -1;
    for await (const [k, v] of this.db.iterator({ gte: 'q', lt: QEND })) {
      const seq = parseInt(k.slice(1), 16);
      if (seq <= this.released) continue;
      this.sizes.set(seq, v.length);
      this.bytes += v.length;
      this.nextSeq = seq + 1;
    }
    this.nextSeq = Math.max(this.nextSeq, this.released + 1);
    this.readSeq = this.released + 1;
    const sinkFiles = (this.opts.sink_files ?? []).map((f) => path.resolve(this.ctx.baseDir, f));
    if (pos) this.cutBack(JSON.parse(pos.toString()) as SinkPosition[]);
    else if (sinkFiles.length) {
      // Nothing stored yet: where the files end now (or that they do not exist) is where a crash
      // before the first release must cut them back to. Stored before anything goes out: without
      // it, a crash between the first writes and the first release left those lines in the logs,
      // and the batches were sent again (the first events twice in each log).
      for (const f of sinkFiles) this.positions.set(f, filePosition(f) ?? { path: f, dev: ABSENT, ino: ABSENT, size: 0 });
      await this.db.put('m:pos', this.storedPositions(), { sync: true });
    }
    this.ctx.services.set(QUEUE_SERVICE, this);
    // The sinks' end-to-end hook (src/sinks/serialize.ts): called once a batch is written.
    this.ctx.services.set(DELIVERED, (batch: unknown[], _sink: string, position?: SinkPosition, written?: number) => {
      if (position) {
        this.reporting.add(position.path);
        this.sinkWrote(position, written ?? getRelease(batch));
      } else {
        // A sink that does not say where its file ends: its size now (exact only with one such sink,
        // which reports right after its write completed and before its next write starts).
        for (const f of sinkFiles) if (!this.reporting.has(f)) this.notePosition(f);
      }
      this.flushed(batch);
    });
    if (this.sizes.size) this.ctx.log.info(`queue resumes with ${this.sizes.size} unreleased batches`);
  }

  /** Cut sink files back to where they were at the last release (see the header comment). */
  private cutBack(list: SinkPosition[]): void {
    for (const p of list) {
      this.positions.set(p.path, p);
      try {
        const st = fs.statSync(p.path);
        // ABSENT: the file did not exist at the release, so all of it came after
        if ((p.dev === ABSENT || (st.dev === p.dev && st.ino === p.ino)) && st.size > p.size) {
          fs.truncateSync(p.path, p.size);
          this.ctx.log.warn(`cut ${p.path} back from ${st.size} to ${p.size} bytes: events written after the last release are written again`);
          this.ctx.counters.add('cutBackBytes', st.size - p.size);
        }
      } catch {
        /* rotated or gone: nothing of ours to cut */
      }
    }
  }

  highWater(agent: string, spool: string): number {
    return this.hw.get(agent + '\0' + spool) ?? -1;
  }

  // ---- write side ----

  override _writev(chunks: Array<{ chunk: Delivery[] }>, cb: (e?: Error | null) => void): void {
    this.commit(chunks.flatMap((c) => c.chunk)).then(() => {
      if (this.bytes > this.maxBytes) {
        if (this.ctx.counters.firstReport('queue-full')) this.ctx.log.warn(`queue over max_bytes ${this.maxBytes}: holding agents back until the sinks catch up`);
        this.blocked = cb;
      } else cb();
    }, (e) => cb(new SkafeError('SKAFE_QUEUE', `queue write failed: ${(e as Error).message}`, { cause: e })));
  }

  override _write(chunk: Delivery[], _e: BufferEncoding, cb: (e?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  private async commit(ds: Delivery[]): Promise<void> {
    const ops: Array<{ type: 'put'; key: string; value: Buffer }> = [];
    const acks: Array<[Delivery, number]> = [];
    const added: Array<[number, Buffer]> = [];
    for (const d of ds) {
      let { first, count, data } = d;
      const last = first + count - 1;
      if (d.spool) {
        const k = d.agent + '\0' + d.spool;
        const hw = this.hw.get(k) ?? -1;
        if (last <= hw) {
          this.ctx.counters.add('duplicates', count);
          acks.push([d, last]);
          continue;
        }
        if (first <= hw) {
          // A batch straddling the high-water mark: only possible if an agent re-split its spool.
          let lines: string[];
          try {
            lines = (await unpackLines(data!, this.maxExpanded, this.maxEvents)).slice(hw + 1 - first);
          } catch (e) {
            // Not stored, but acknowledged: sent again it would fail again, and the agent would never move on.
            this.ctx.problem({ code: 'SKAFE_QUEUE', message: `batch ${first}–${last} from ${d.agent} does not unpack (${this.unpackError(e)}); acknowledged and dropped (${last - hw} events)` });
            this.ctx.counters.dropped += last - hw;
            this.hw.set(k, last);
            ops.push({ type: 'put', key: 'h' + k, value: Buffer.from(String(last)) });
            acks.push([d, last]);
            continue;
          }
          this.ctx.counters.add('duplicates', hw + 1 - first);
          data = await packLines(lines);
          count = lines.length;
          first = hw + 1;
        }
        this.hw.set(k, last);
        ops.push({ type: 'put', key: 'h' + k, value: Buffer.from(String(last)) });
      }
      if (!data) data = await packEvents(d.events ?? []);
      const head = Buffer.from(JSON.stringify({ agent: d.agent, spool: d.spool, first, count } satisfies Header));
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(head.length);
      const value = Buffer.concat([len, head, data]);
      const seq = this.nextSeq++;
      ops.push({ type: 'put', key: qkey(seq), value });
      added.push([seq, value]);
      if (d.spool) acks.push([d, last]);
      this.ctx.counters.in += count;
    }
    if (ops.length) await this.db.batch(ops, { sync: true });
    for (const [seq, value] of added) {
      this.sizes.set(seq, value.length);
      this.bytes += value.length;
    }
    for (const [d, last] of acks) d.conn?.durable(last, d.data?.length ?? 0);
    if (added.length && this.wantRead && !this.pumping && !this.dirty && this.readSeq === added[0]![0]) void this.emitDirect(added);
    else if (added.length) this.kick();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.inputDone = true;
    this.kick();
    cb();
  }

  // ---- read side ----

  override _read(): void {
    this.wantRead = true;
    void this.pump();
  }

  private kick(): void {
    this.dirty = true;
    if (this.wantRead) void this.pump();
  }

  /**
   * Decode entries and push their events, merged into batches of up to MAX_BATCH
   * (many agents send small batches; one sink write per entry would cost more
   * than the events). A merged batch releases every entry up to its last one.
   * An entry of more than MAX_BATCH events (an agent that batches otherwise)
   * goes on in pieces of MAX_BATCH, the release with the last: one huge batch
   * would make every stage after this one hold it whole (the rule stage its
   * output lines, seven times the size). Stops after the entry that fills
   * downstream: the rest are read again when it asks, so what is decoded and
   * waiting here stays within a few batches. False when downstream is full.
   */
  private async emitEntries(entries: Array<[number, Buffer]>): Promise<boolean> {
    let out: unknown[] = [];
    let more = true;
    const encoded = this.ctx.encodedOutput === true;
    const finish = (batch: unknown[]) => (encoded ? markEncoded(batch) : batch);
    let done = 0;
    for (; done < entries.length && more; done++) {
      const [seq, v] = entries[done]!;
      const events = encoded ? await this.decodeEntryText(seq, v) : await this.decodeEntry(seq, v);
      if (out.length && out.length + events.length > MAX_BATCH) {
        more = this.push(finish(out));
        out = [];
      }
      let from = 0;
      for (; events.length - from > MAX_BATCH; from += MAX_BATCH) more = this.push(finish(events.slice(from, from + MAX_BATCH))) && more;
      for (let k = from; k < events.length; k++) out.push(events[k]);
      setRelease(out, seq);
    }
    if (out.length || done > 0) {
      if (!out.length) setRelease(out, entries[done - 1]![0]);
      more = this.push(finish(out));
    }
    return more;
  }

  private entryHeader(v: Buffer): [Header, number] {
    const hl = v.readUInt32BE(0);
    return [JSON.parse(v.subarray(4, 4 + hl).toString()) as Header, 4 + hl];
  }

  /**
   * An entry's lines, checked; an entry that does not unpack is reported and
   * yields none. One holding another number of events than its batch claimed
   * (an agent's offsets count them) is reported and kept whole.
   */
  private async entryLines(seq: number, h: Header, data: Buffer): Promise<CheckedLines> {
    try {
      const checked = await unpackCheckedLines(data, this.maxExpanded, this.maxEvents);
      if (checked.lines.length !== h.count) {
        this.ctx.counters.add('countMismatch');
        this.ctx.problem({
          code: 'SKAFE_QUEUE',
          message: `queue entry ${seq} from ${h.agent} (offsets ${h.first}–${h.first + h.count - 1}) holds ${checked.lines.length} events, not the ${h.count} its batch claimed; all are kept`,
        });
      }
      return checked;
    } catch (e) {
      this.ctx.counters.dropped += h.count;
      this.ctx.problem({ code: 'SKAFE_QUEUE', message: `queue entry ${seq} from ${h.agent} does not unpack (${this.unpackError(e)}); dropped (${h.count} events)` });
      return { lines: [], status: new Uint8Array(0) };
    }
  }

  /**
   * A line that is not a JSON object: reported, and kept as an event holding
   * its text (event-lines.ts), unless it is blank. Null: nothing to keep.
   */
  private malformed(seq: number, h: Header, i: number, line: string, agent: Record<string, unknown>): Record<string, unknown> | null {
    const blank = isBlank(line);
    const why = blank ? 'a blank line' : whyNotObject(line);
    this.ctx.problem({
      code: 'SKAFE_MALFORMED_EVENT',
      message: `agent ${h.agent} sent an event that is not a JSON object (${why}), line ${i + 1} of queue entry ${seq}; ${blank ? 'skipped' : 'kept as event.original'}`,
    });
    return blank ? null : malformedEvent(line, why, agent);
  }

  /**
   * The events as JSON text with agent.name/agent.id spliced in front, for a next
   * stage that takes encoded batches (the event log sinks): no parse, no re-serialize.
   * An event that already has an "agent" object is merged the slow way.
   */
  private async decodeEntryText(seq: number, v: Buffer): Promise<string[]> {
    this.readSeq = seq + 1;
    const [h, at] = this.entryHeader(v);
    const { lines, status } = await this.entryLines(seq, h, v.subarray(at));
    const agent = { name: h.agent, ...(h.spool ? { id: h.spool } : {}) };
    const prefix = `{"agent":${JSON.stringify(agent)},`;
    const out: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (status[i] === SPLICE) out.push(prefix + l.slice(1));
      else if (status[i] === MERGE) out.push(JSON.stringify(withAgent(JSON.parse(l) as Record<string, unknown>, agent)));
      else {
        const ev = this.malformed(seq, h, i, l, agent);
        if (ev) out.push(JSON.stringify(ev));
      }
    }
    this.ctx.counters.out += out.length;
    return out;
  }

  private async decodeEntry(seq: number, v: Buffer): Promise<Array<Record<string, unknown>>> {
    this.readSeq = seq + 1;
    const [h, at] = this.entryHeader(v);
    const { lines, status } = await this.entryLines(seq, h, v.subarray(at));
    const agent = { name: h.agent, ...(h.spool ? { id: h.spool } : {}) };
    const events: Array<Record<string, unknown>> = [];
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (status[i] !== SPLICE && status[i] !== MERGE) {
        const ev = this.malformed(seq, h, i, l, agent);
        if (ev) events.push(ev);
      } else events.push(withAgent(JSON.parse(l) as Record<string, unknown>, agent));
    }
    // Stages that copy arrays (fanout, filters) keep the event objects: remember their entry by object too.
    for (const ev of events) this.seqOf.set(ev, seq);
    this.ctx.counters.out += events.length;
    return events;
  }

  /** A reader that has caught up gets just-committed entries from memory, not read back from disk. */
  private async emitDirect(entries: Array<[number, Buffer]>): Promise<void> {
    this.pumping = true;
    try {
      this.wantRead = await this.emitEntries(entries);
    } catch (e) {
      if (!this.destroyed) this.destroy(new SkafeError('SKAFE_QUEUE', `queue read failed: ${(e as Error).message}`, { cause: e }));
    } finally {
      this.pumping = false;
    }
    if (this.dirty && this.wantRead) void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.destroyed) return;
    this.pumping = true;
    try {
      for (;;) {
        this.dirty = false;
        const got: Array<[number, Buffer]> = [];
        for await (const [k, v] of this.db.iterator({ gte: qkey(this.readSeq), lt: QEND, limit: 32 })) got.push([parseInt(k.slice(1), 16), v]);
        if (got.length === 0) {
          if (this.inputDone) {
            this.push(null);
            return;
          }
          if (!this.dirty) break;
          continue;
        }
        const more = await this.emitEntries(got);
        this.wantRead = more;
        if (!more) break;
      }
    } catch (e) {
      if (!this.destroyed) this.destroy(new SkafeError('SKAFE_QUEUE', `queue read failed: ${(e as Error).message}`, { cause: e }));
    } finally {
      this.pumping = false;
    }
  }

  // ---- release (called by sinks) ----

  private readonly seqOf = new WeakMap<object, number>();

  private notePosition(file: string): void {
    const p = filePosition(file);
    if (p) this.positions.set(file, p);
  }

  /** m:pos: where each sink file ended after the last release. */
  private storedPositions(): Buffer {
    return Buffer.from(JSON.stringify([...this.positions.values()]));
  }

  /** A sink wrote batch `seq` (undefined: a piece of one, the rest to come) and its file now ends at `pos`. */
  private sinkWrote(pos: SinkPosition, seq: number | undefined): void {
    if (seq === undefined) return;
    if (seq <= this.released) {
      this.positions.set(pos.path, pos);
      return;
    }
    let list = this.unreleasedPositions.get(pos.path);
    if (!list) this.unreleasedPositions.set(pos.path, (list = []));
    list.push({ seq, pos });
    // Bounded by the batches between the slowest and the fastest branch; a cap all the same.
    if (list.length > MAX_UNRELEASED_POSITIONS) list.shift();
  }

  flushed(batch: unknown[]): void {
    let seq = getRelease(batch);
    if (seq === undefined) {
      for (let i = batch.length - 1; i >= 0 && seq === undefined; i--) {
        const ev = batch[i];
        if (ev && typeof ev === 'object') seq = this.seqOf.get(ev);
      }
    }
    if (seq === undefined || seq <= this.released) return;
    this.released = seq;
    for (const [file, list] of this.unreleasedPositions) {
      while (list.length && list[0]!.seq <= seq) this.positions.set(file, list.shift()!.pos);
    }
    // Sinks report per batch; writing the release every 20 ms is enough (a later release covers earlier ones).
    if (this.releaseTimer || this.releasing) {
      this.releaseWanted = true;
      return;
    }
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined;
      void this.persistRelease();
    }, this.blocked ? 0 : 20);
  }

  private releaseTimer: NodeJS.Timeout | undefined;
  private async persistRelease(): Promise<void> {
    if (this.releasing) {
      this.releaseWanted = true;
      return;
    }
    this.releasing = true;
    try {
      do {
        this.releaseWanted = false;
        const upTo = this.released;
        const ops: Array<{ type: 'put' | 'del'; key: string; value?: Buffer }> = [];
        for (const [seq, size] of this.sizes) {
          if (seq > upTo) break;
          ops.push({ type: 'del', key: qkey(seq) });
          this.sizes.delete(seq);
          this.bytes -= size;
        }
        ops.push({ type: 'put', key: 'm:released', value: Buffer.from(String(upTo)) });
        if (this.positions.size) ops.push({ type: 'put', key: 'm:pos', value: this.storedPositions() });
        if (this.db.status !== 'open') return;
        await this.db.batch(ops as never, { sync: false });
        if (this.blocked && this.bytes <= this.maxBytes) {
          const cb = this.blocked;
          this.blocked = null;
          cb();
        }
      } while (this.releaseWanted);
    } catch (e) {
      if (!this.destroyed) this.destroy(new SkafeError('SKAFE_QUEUE', `queue release failed: ${(e as Error).message}`, { cause: e }));
    } finally {
      this.releasing = false;
    }
  }

  /** Unreleased batches (for tests and status). */
  backlog(): number {
    return this.sizes.size;
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const finish = async () => {
      if (this.releaseTimer) {
        clearTimeout(this.releaseTimer);
        this.releaseTimer = undefined;
        await this.persistRelease();
      }
      while (this.releasing) await new Promise((r) => setTimeout(r, 5));
      await this.db?.close();
    };
    finish().then(() => cb(err), () => cb(err));
  }
}

export default defineStage<QueueOptions>({
  kind: 'transform',
  use: 'queue',
  description: 'the server durable queue: syncs agent batches before they are acknowledged, drops resends by (agent, spool, offset), releases only what the sink flushed',
  schema: {
    type: 'object',
    properties: { dir: { type: 'string', minLength: 1 }, max_bytes: { type: 'integer', minimum: 1 }, sink_files: { type: 'array', items: { type: 'string' } }, max_expanded_bytes: { type: 'integer', minimum: 1024, description: "bytes an agent's batch may expand to; past it the batch is dropped and reported (default 256 MiB)" }, max_batch_events: { type: 'integer', minimum: 512, description: "events an agent's batch may hold (agents send at most 512); past it the batch is dropped and reported (default 65536)" } },
    required: ['dir'],
    additionalProperties: false,
  },
  async create(options, ctx) {
    const q = new Queue(options, ctx);
    await q.open();
    return q;
  },
});

/** The event with the link's agent name and spool id over any the agent wrote. */
function withAgent(ev: Record<string, unknown>, agent: Record<string, unknown>): Record<string, unknown> {
  const a = ev.agent as Record<string, unknown> | undefined;
  ev.agent = a && typeof a === 'object' && !Array.isArray(a) ? { ...a, ...agent } : agent;
  return ev;
}
