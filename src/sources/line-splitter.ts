import { StringDecoder } from 'node:string_decoder';

// Splits byte chunks into lines with a hard cap on line length (split2's
// maxLength/skipOverflow habit): an over-long line is skipped, never buffered
// whole. Unlike split2 it hands back lines in bulk, because the caller batches
// them; one push per line is what we are avoiding.

export interface SplitterEvents {
  line(text: string, lineNo: number): void;
  tooLong(lineNo: number, length: number): void;
}

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  /** Skipping the rest of an over-long line until its newline. */
  private skipping = false;
  private skippedLength = 0;
  /** 1-based number of the next line to complete. */
  lineNo = 1;

  constructor(
    private readonly maxLength: number,
    private readonly on: SplitterEvents,
  ) {}

  /** Bytes of the incomplete last line still held (for resumable positions). */
  get pendingBytes(): number {
    return this.skipping ? 0 : Buffer.byteLength(this.partial);
  }

  push(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      if (this.skipping) {
        this.on.tooLong(this.lineNo, this.skippedLength + nl - start);
        this.skipping = false;
        this.skippedLength = 0;
      } else if (this.partial.length) {
        const line = this.partial + text.slice(start, nl);
        this.partial = '';
        this.emit(line);
      } else {
        this.emit(text.slice(start, nl));
      }
      this.lineNo++;
      start = nl + 1;
    }
    if (start < text.length) {
      if (this.skipping) {
        this.skippedLength += text.length - start;
      } else {
        this.partial += text.slice(start);
        if (this.partial.length > this.maxLength) {
          this.skipping = true;
          this.skippedLength = this.partial.length;
          this.partial = '';
        }
      }
    }
  }

  /** End of input: a last line without newline still counts. */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (this.skipping) {
      this.on.tooLong(this.lineNo, this.skippedLength + rest.length);
      this.skipping = false;
      this.lineNo++;
    } else if (rest.length) {
      this.emit(rest);
      this.lineNo++;
    }
  }

  /** Forget a partial line (the file was rotated or truncated under us). */
  reset(): void {
    this.partial = '';
    this.skipping = false;
    this.skippedLength = 0;
    this.decoder.end();
  }

  private emit(line: string): void {
    this.take(line, this.lineNo);
  }

  /** A whole line, from here or from a caller that split it itself: handed on, or reported as too long. */
  take(line: string, lineNo: number): void {
    if (line.length > this.maxLength) this.on.tooLong(lineNo, line.length);
    else this.on.line(line, lineNo);
  }
}
