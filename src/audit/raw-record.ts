import { parseRecordLine, type AuditRecord } from './record.js';

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

  constructor(
    /** The bytes the line is in (a source chunk of its own, never reused). */
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
  ) {
    if (node !== undefined) this.node = node;
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
    return new RawRecord(own, 0, own.length, this.typeNum, this.sec, this.msec, this.serial, this.id, this.node);
  }

  /** As a plain record, should one be serialized. */
  toJSON(): AuditRecord {
    return this.parsed();
  }
}
