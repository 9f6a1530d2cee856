import { parseRecordLine, type AuditRecord } from './record.js';
import { giveBuffer } from '../buffer-pool.js';

/**
 * A source chunk shared by the RawRecords read from it. It goes back to the
 * buffer pool once it is sealed (no more records will be read from it) and
 * every record has been released (its bytes copied elsewhere); a record never
 * released leaves the chunk to the collector. Reusing chunks matters: freeing
 * a few hundred KB is an munmap, with a TLB shootdown on every core.
 */
export class Chunk {
  live = 0;
  sealed = false;
  constructor(readonly buffer: ArrayBuffer) {}

  seal(): void {
    this.sealed = true;
    if (this.live === 0) giveBuffer(this.buffer);
  }

  release(): void {
    if (--this.live === 0 && this.sealed) giveBuffer(this.buffer);
  }
}

/**
 * A record whose header the native line scanner read (native/interpret,
 * scanLines) while the line itself stays bytes: coalescing needs only the
 * header, and the coalesce workers' native interpreter reads the line's bytes
 * (src/transforms/coalesce.ts). Only lines the scanner calls clean become
 * RawRecords, and for those parseRecordLine gives exactly these header values;
 * whatever reads the rest gets the parsed record, decoded on first use.
 */
export class RawRecord implements AuditRecord {
  declare node?: string;
  private full: AuditRecord | undefined;
  /** The pooled chunk `raw` is part of, until this record's bytes are copied out (release). */
  private chunk: Chunk | undefined;

  constructor(
    /** The bytes the line is in: a source chunk, pooled again once released (see Chunk). */
    readonly raw: Buffer,
    readonly start: number,
    /** End of the line, before its \n. */
    readonly end: number,
    readonly typeNum: number,
    readonly sec: number,
    readonly msec: number,
    readonly serial: number,
    readonly id: string,
    node: string | undefined,
    chunk?: Chunk,
  ) {
    if (node !== undefined) this.node = node;
    if (chunk !== undefined) {
      chunk.live++;
      this.chunk = chunk;
    }
  }

  /**
   * The bytes have been copied where they are needed: the chunk may be
   * reused, and this record must not be read again. Once only.
   */
  release(): void {
    const c = this.chunk;
    this.chunk = undefined;
    c?.release();
  }

  private parsed(): AuditRecord {
    // a clean line always parses (the scanner checked what parseRecordLine checks)
    return (this.full ??= parseRecordLine(this.raw.toString('utf8', this.start, this.end)) as AuditRecord);
  }

  get type(): string {
    return this.parsed().type;
  }

  get body(): string {
    return this.parsed().body;
  }

  get enriched(): string | undefined {
    return this.parsed().enriched;
  }

  /** Whether its bytes are its own rather than a part of a source chunk. */
  get detached(): boolean {
    return this.start === 0 && this.end === this.raw.length && this.raw.byteOffset === 0 && this.raw.buffer.byteLength === this.end;
  }

  /** The same record with a copy of only its own line: it no longer keeps its source chunk alive. */
  detach(): RawRecord {
    const own = Buffer.alloc(this.end - this.start);
    this.raw.copy(own, 0, this.start, this.end);
    const d = new RawRecord(own, 0, own.length, this.typeNum, this.sec, this.msec, this.serial, this.id, this.node);
    this.release();
    return d;
  }

  /** As a plain record, should one be serialized. */
  toJSON(): AuditRecord {
    return this.parsed();
  }
}
