import { Readable } from 'node:stream';
import { defineStage, BATCH_HWM, type StageContext } from '../stage.js';
import { TextRecordReader, DEFAULT_MAX_LINE } from './text-records.js';

export interface StdinOptions {
  maxLineLength?: number;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxLineLength: { type: 'integer', minimum: 256, default: DEFAULT_MAX_LINE },
  },
};

/**
 * Records from standard input: the audisp plugin wire (auditd starts us as a
 * plugin and writes one record per line), or anything piped in. Reading from
 * the input only when downstream asks is the backpressure: auditd's plugin
 * queue then fills, and auditd applies its own overflow policy.
 */
export class TextStreamSource extends Readable {
  private readonly reader: TextRecordReader;
  private ended = false;
  private waiting = false;

  constructor(
    private readonly input: NodeJS.ReadableStream & { read(size?: number): Buffer | string | null },
    label: string,
    maxLineLength: number,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    this.reader = new TextRecordReader(ctx, label, maxLineLength, (b) => this.push(b));
    input.on('end', () => this.finish());
    input.on('error', (err: Error) => this.destroy(err));
    ctx.signal.addEventListener('abort', () => this.finish(), { once: true });
  }

  override _read(): void {
    this.pull();
  }

  private pull(): void {
    if (this.ended || this.waiting) return;
    let chunk: Buffer | string | null;
    let got = false;
    while ((chunk = this.input.read()) !== null) {
      got = true;
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      this.ctx.counters.add('bytesRead', buf.length);
      this.reader.push(buf);
      if (this.readableLength >= this.readableHighWaterMark) break;
    }
    if (got) this.reader.flush();
    if (!got || this.readableLength < this.readableHighWaterMark) {
      this.waiting = true;
      this.input.once('readable', () => {
        this.waiting = false;
        this.pull();
      });
    }
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.reader.end();
    this.reader.flush();
    this.push(null);
  }
}

export default defineStage<StdinOptions>({
  kind: 'source',
  use: 'stdin',
  description: 'audit records from standard input (the audisp plugin wire format, or any piped audit log)',
  schema,
  create(options, ctx) {
    return new TextStreamSource(process.stdin, '<stdin>', options.maxLineLength ?? DEFAULT_MAX_LINE, ctx);
  },
});
