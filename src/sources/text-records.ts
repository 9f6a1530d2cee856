import { LineSplitter } from './line-splitter.js';
import { parseRecordLine, type AuditRecord } from '../audit/record.js';
import { MAX_BATCH, type Batch, type StageContext } from '../stage.js';

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

  constructor(
    private readonly ctx: StageContext,
    private readonly label: string,
    maxLineLength: number,
    private readonly emit: (batch: Batch<AuditRecord>) => void,
  ) {
    this.splitter = new LineSplitter(maxLineLength, {
      line: (text, lineNo) => this.line(text, lineNo),
      tooLong: (lineNo, length) =>
        ctx.problem({
          code: 'SKAFE_LINE_TOO_LONG',
          message: `line of ${length} characters exceeds the maximum of ${maxLineLength}; skipped`,
          file: label,
          line: lineNo,
        }),
    });
  }

  get pendingBytes(): number {
    return this.splitter.pendingBytes;
  }

  get lineNo(): number {
    return this.splitter.lineNo;
  }

  push(chunk: Buffer): void {
    this.splitter.push(chunk);
  }

  end(): void {
    this.splitter.end();
  }

  reset(): void {
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
