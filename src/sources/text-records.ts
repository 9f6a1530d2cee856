import { LineSplitter } from './line-splitter.js';
import { parseRecordLine, type AuditRecord } from '../audit/record.js';
import { MAX_BATCH, type Batch, type StageContext } from '../stage.js';
import { RawRecord, Chunk } from '../audit/raw-record.js';
import { takeBuffer, roomFor } from '../buffer-pool.js';
import { nativeInterpreterAvailable, scanLines, SCAN_SLOTS, LINE_RECORD, LINE_EMPTY } from '../audit/native-interpret.js';

/** Where re-reading a file must start to lose nothing; attached to batches (non-enumerable). */
export interface Cursor {
  path: string;
  dev: number;
  ino: number;
  offset: number;
}

export function setCursor<T>(batch: Batch<T>, cursor: Cursor): Batch<T> {
  Object.defineProperty(batch, 'cursor', { value: cursor, enumerable: false, configurable: true, writable: true });
  return batch;
}

export function getCursor(batch: Batch<unknown>): Cursor | undefined {
  return (batch as { cursor?: Cursor }).cursor;
}

// The kernel caps one audit message at 8970 bytes (MAX_AUDIT_MESSAGE_LENGTH);
// auditd's ENRICHED form adds interpretations. Anything near 64 KiB is not audit data.
export const DEFAULT_MAX_LINE = 65536;

/**
 * Text audit records from byte chunks (audit.log, the audisp wire): splits
 * lines, parses headers, counts and reports bad lines by number, and collects
 * records into batches. Shared by the `file` and `stdin` sources.
 */
export class TextRecordReader {
  private batch: AuditRecord[] = [];
  private readonly splitter: LineSplitter;
  // Raw mode (the next stage takes RawRecords and the native scanner is
  // built): lines stay bytes, the scanner reads their headers, and only lines
  // it does not call clean are decoded and parsed here. The splitter still
  // takes over for a line too long to hold (it skips those without buffering
  // them) until that line's newline; line numbers are the splitter's counter.
  private readonly raw: boolean;
  /** Raw mode: the bytes of an incomplete last line. */
  private rawPending: Buffer | undefined;
  /** Raw mode: the splitter holds the current partial line. */
  private inSplitter = false;
  private scan: Float64Array | undefined;
  /** Raw mode: the chunk being scanned. */
  private chunk: Chunk | undefined;

  constructor(
    private readonly ctx: StageContext,
    private readonly label: string,
    private readonly maxLineLength: number,
    private readonly emit: (batch: Batch<AuditRecord>) => void,
  ) {
    this.raw = ctx.rawRecordsOutput === true && nativeInterpreterAvailable();
    this.splitter = new LineSplitter(maxLineLength, {
      line: (text, lineNo) => this.line(text, lineNo),
      tooLong: (lineNo, length) => this.tooLong(lineNo, length),
    });
  }

  private tooLong(lineNo: number, length: number): void {
    this.ctx.problem({ code: 'SKAFE_LINE_TOO_LONG', message: `line of ${length} characters exceeds the maximum of ${this.maxLineLength}; skipped`, file: this.label, line: lineNo });
  }

  get pendingBytes(): number {
    if (this.raw && !this.inSplitter) return this.rawPending?.length ?? 0;
    return this.splitter.pendingBytes;
  }

  get lineNo(): number {
    return this.splitter.lineNo;
  }

  push(input: Buffer): void {
    if (!this.raw) return this.splitter.push(input);
    let data = input;
    if (this.inSplitter) {
      const nl = input.indexOf(10);
      if (nl < 0) return this.splitter.push(input);
      // up to and with the newline: the splitter's partial line ends, its decoder is clean again
      this.splitter.push(input.subarray(0, nl + 1));
      this.inSplitter = false;
      data = input.subarray(nl + 1);
    }
    // Bytes of our own (the source reads into one buffer again and again, and RawRecords keep
    // theirs), in a pooled buffer that comes back once every record read from it is sent on.
    const pending = this.rawPending?.length ?? 0;
    const size = pending + data.length;
    const chunk = new Chunk(takeBuffer(size) ?? roomFor(size));
    const buf = Buffer.from(chunk.buffer, 0, size);
    if (pending > 0) this.rawPending!.copy(buf, 0);
    data.copy(buf, pending);
    this.rawPending = undefined;
    this.chunk = chunk;
    const scan = (this.scan ??= new Float64Array(SCAN_SLOTS * 4096));
    const capacity = scan.length / SCAN_SLOTS;
    let pos = 0;
    for (;;) {
      const n = scanLines(buf, pos, scan);
      for (let i = 0; i < n; i++) this.rawLine(buf, scan, i * SCAN_SLOTS);
      if (n > 0) pos = scan[(n - 1) * SCAN_SLOTS + 1]! + 1;
      if (n < capacity) break;
    }
    this.chunk = undefined;
    chunk.seal();
    if (pos < buf.length) {
      const tail = buf.subarray(pos);
      // Longer than any line we keep could be (3 bytes per UTF-16 unit at most): the splitter skips it.
      if (tail.length > 3 * this.maxLineLength) {
        this.inSplitter = true;
        this.splitter.push(tail);
      } else {
        // a copy: the chunk may go back to the pool before this line is complete
        this.rawPending = Buffer.from(tail);
      }
    }
  }

  private rawLine(buf: Buffer, scan: Float64Array, o: number): void {
    const start = scan[o]!;
    const end = scan[o + 1]!;
    const status = scan[o + 2]!;
    const lineNo = this.splitter.lineNo++;
    // a line longer in bytes than the limit may still be short enough in characters: the text decides
    if (status === LINE_RECORD && end - start <= this.maxLineLength) {
      this.ctx.counters.in++;
      const nodeStart = scan[o + 9]!;
      const r = new RawRecord(buf, start, end, scan[o + 3]!, scan[o + 4]!, scan[o + 5]!, scan[o + 6]!, buf.toString('latin1', scan[o + 7], scan[o + 8]), nodeStart >= 0 ? buf.toString('utf8', nodeStart, scan[o + 10]) : undefined, this.chunk);
      this.batch.push(r);
      if (this.batch.length >= MAX_BATCH) this.flush();
    } else if (status === LINE_EMPTY) {
      this.ctx.counters.in++;
    } else {
      this.splitter.take(buf.toString('utf8', start, end), lineNo);
    }
  }

  end(): void {
    if (this.raw && !this.inSplitter) {
      const rest = this.rawPending;
      this.rawPending = undefined;
      if (rest !== undefined && rest.length > 0) this.splitter.take(rest.toString('utf8'), this.splitter.lineNo++);
      return;
    }
    this.inSplitter = false;
    this.splitter.end();
  }

  reset(): void {
    this.rawPending = undefined;
    this.inSplitter = false;
    this.splitter.reset();
  }

  /** Hand over what is collected so far (possibly nothing). */
  flush(cursor?: Cursor): void {
    const b = this.batch;
    if (b.length === 0) return;
    this.batch = [];
    this.ctx.counters.out += b.length;
    if (cursor) setCursor(b, cursor);
    this.emit(b);
  }

  private line(text: string, lineNo: number): void {
    this.ctx.counters.in++;
    if (text.length === 0 || (text.length === 1 && text === '\r')) return;
    const r = parseRecordLine(text);
    if ('error' in r) {
      this.ctx.problem({ code: 'SKAFE_MALFORMED_RECORD', message: r.error, file: this.label, line: lineNo });
      return;
    }
    this.batch.push(r);
    if (this.batch.length >= MAX_BATCH) this.flush();
  }
}
