import { Readable } from 'node:stream';
import fs from 'node:fs/promises';
import path from 'node:path';
import { defineStage, BATCH_HWM, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { TextRecordReader, DEFAULT_MAX_LINE, type Cursor } from './text-records.js';

export interface FileOptions {
  path: string;
  /** Keep reading as the file grows and across rotation, like `tail -F`. */
  follow?: boolean;
  /** Where to start: the whole file (default) or only what is appended from now on. */
  start?: 'beginning' | 'end';
  /** Resume here if the file at `path` is still the same inode (see Cursor). */
  resume?: { dev: number; ino: number; offset: number };
  pollIntervalMs?: number;
  maxLineLength?: number;
  chunkSize?: number;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    path: { type: 'string', minLength: 1, description: 'audit log to read; relative to the definition file' },
    follow: { type: 'boolean', default: false },
    start: { enum: ['beginning', 'end'], default: 'beginning' },
    resume: {
      type: 'object',
      additionalProperties: false,
      required: ['dev', 'ino', 'offset'],
      properties: { dev: { type: 'integer' }, ino: { type: 'integer' }, offset: { type: 'integer', minimum: 0 } },
    },
    pollIntervalMs: { type: 'integer', minimum: 10, default: 250 },
    maxLineLength: { type: 'integer', minimum: 256, default: DEFAULT_MAX_LINE },
    chunkSize: { type: 'integer', minimum: 4096, maximum: 16777216, default: 262144 },
  },
};

class FileSource extends Readable {
  private fh: fs.FileHandle | undefined;
  private dev = 0;
  private ino = 0;
  private offset = 0;
  private reading = false;
  private finished = false;
  private waitTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Reading the tail of a rotated file before the file at `path` (see openRotated). */
  private rotatedTail: string | undefined;
  private readonly buf: Buffer;
  private readonly reader: TextRecordReader;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly opts: Required<Omit<FileOptions, 'resume'>> & Pick<FileOptions, 'resume'>,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    this.buf = Buffer.allocUnsafe(opts.chunkSize);
    this.reader = new TextRecordReader(ctx, file, opts.maxLineLength, (b) => this.push(b));
    ctx.signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.open(true).then(
      () => callback(),
      (err) => callback(err),
    );
  }

  private async open(first: boolean): Promise<void> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.file, 'r');
    } catch (err) {
      if (!first || !this.opts.follow || (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SkafeError('SKAFE_INPUT_OPEN', `cannot open ${this.file}: ${(err as Error).message}`, {
          file: this.file,
          cause: err,
        });
      }
      // tail -F: a file that does not exist yet is waited for.
      this.ctx.log.warn(`${this.file} does not exist yet; waiting for it`);
      return;
    }
    if (this.destroyed) {
      await fh.close();
      return;
    }
    const st = await fh.stat();
    this.fh = fh;
    this.dev = st.dev;
    this.ino = st.ino;
    this.offset = 0;
    this.ctx.counters.extra.totalBytes = st.size;
    this.ctx.counters.extra.bytesRead = 0;
    const resume = this.opts.resume;
    if (first && resume && resume.dev === st.dev && resume.ino === st.ino && resume.offset <= st.size) {
      this.offset = resume.offset;
    } else if (first && resume && (await this.openRotated(resume))) {
      await fh.close();
      return;
    } else if (first && this.opts.start === 'end') {
      this.offset = st.size;
    }
    this.ctx.counters.extra.bytesRead = this.offset;
  }

  /**
   * Resuming, the file at `path` is no longer the one we were reading: it was
   * rotated while we were stopped. Like Filebeat's registry, find the old file
   * by device and inode among its rotated siblings (audit.log.1, …), finish it
   * from the saved offset, then go on with the new file from its start.
   */
  private async openRotated(resume: { dev: number; ino: number; offset: number }): Promise<boolean> {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return false;
    }
    for (const name of names) {
      if (name === base || !name.startsWith(base)) continue;
      const candidate = path.join(dir, name);
      const st = await fs.stat(candidate).catch(() => undefined);
      if (!st || st.dev !== resume.dev || st.ino !== resume.ino || resume.offset > st.size) continue;
      this.fh = await fs.open(candidate, 'r');
      this.dev = st.dev;
      this.ino = st.ino;
      this.offset = resume.offset;
      this.rotatedTail = candidate;
      this.ctx.counters.extra.totalBytes = st.size;
      this.ctx.counters.extra.bytesRead = this.offset;
      this.ctx.log.info(`${this.file} was rotated while stopped: finishing ${candidate} from byte ${resume.offset} first`);
      return true;
    }
    this.ctx.log.warn(`${this.file} is not the file last read (device ${resume.dev}, inode ${resume.ino}) and no rotated sibling is; reading it from the start`);
    return false;
  }

  override _read(): void {
    if (this.reading || this.finished) return;
    this.reading = true;
    this.readMore().then(
      () => {
        this.reading = false;
      },
      (err) => {
        this.reading = false;
        this.destroy(err);
      },
    );
  }

  private cursor(): Cursor {
    return { path: this.file, dev: this.dev, ino: this.ino, offset: this.offset - this.reader.pendingBytes };
  }

  /** Read chunks until the consumer is full, the file ends, or we stop. */
  private async readMore(): Promise<void> {
    for (;;) {
      // Destroyed while a read or stat was awaited: _destroy closed the file; reopening it would poll forever.
      if (this.destroyed) return;
      if (this.stopped) return this.finish();
      if (!this.fh) {
        await this.waitForChange();
        return;
      }
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.offset);
      if (bytesRead > 0) {
        this.offset += bytesRead;
        this.ctx.counters.extra.bytesRead = this.offset;
        this.reader.push(this.buf.subarray(0, bytesRead));
        // One batch per chunk so every batch can carry an exact resume position.
        const before = this.readableLength;
        this.reader.flush(this.cursor());
        if (this.readableLength > before && this.readableLength >= this.readableHighWaterMark) return;
        continue;
      }
      if (this.rotatedTail !== undefined) {
        // The rotated file is done: on to the current one, from its start.
        this.reader.end();
        this.reader.flush(this.cursor());
        this.reader.reset();
        this.rotatedTail = undefined;
        await this.fh.close();
        this.fh = undefined;
        await this.open(false);
        continue;
      }
      if (!this.opts.follow) return this.finish();
      await this.waitForChange();
      return;
    }
  }

  /** At end of a followed file: wait, then look for growth, rotation or truncation. */
  private async waitForChange(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.waitTimer = setTimeout(resolve, this.opts.pollIntervalMs);
    });
    this.waitTimer = undefined;
    this.wake = undefined;
    if (this.stopped) return this.finish();
    let st;
    try {
      st = await fs.stat(this.file);
    } catch {
      st = undefined; // rotated away and not yet recreated
    }
    if (this.destroyed) return;
    if (this.fh && st) {
      if (st.dev !== this.dev || st.ino !== this.ino) {
        // Rotated: whatever was appended to the old file before the rename is read first.
        const { size } = await this.fh.stat();
        if (size > this.offset) return this.readMore();
        this.reader.end();
        this.reader.flush(this.cursor());
        await this.fh.close();
        this.fh = undefined;
        this.reader.reset();
        this.ctx.counters.add('rotations');
        await this.open(false);
      } else if (st.size < this.offset) {
        // Truncated in place (copytruncate): start over at the top.
        this.ctx.counters.add('truncations');
        this.reader.reset();
        this.offset = 0;
      }
    } else if (!this.fh && st) {
      await this.open(false);
    }
    return this.readMore();
  }

  /** Stop reading (the pipeline was asked to stop): hand over complete lines and end. */
  private stop(): void {
    this.stopped = true;
    if (this.waitTimer) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
      const wake = this.wake;
      this.wake = undefined;
      wake?.(); // the waiting readMore sees `stopped` and finishes
    } else if (!this.reading) {
      this.finish();
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    // A followed file's unterminated last line may still be being written: leave it.
    if (!this.opts.follow) this.reader.end();
    this.reader.flush(this.cursor());
    this.push(null);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.waitTimer) clearTimeout(this.waitTimer);
    const fh = this.fh;
    this.fh = undefined;
    if (fh) fh.close().then(() => callback(err), () => callback(err));
    else callback(err);
  }
}

export default defineStage<FileOptions>({
  kind: 'source',
  use: 'file',
  description: 'audit records from a file (audit.log text, ENRICHED, node= prefix, bare netlink form); follow: true tails it like tail -F',
  schema,
  create(options, ctx) {
    const file = path.resolve(ctx.baseDir, options.path);
    return new FileSource(
      file,
      {
        path: file,
        follow: options.follow ?? false,
        start: options.start ?? 'beginning',
        resume: options.resume,
        pollIntervalMs: options.pollIntervalMs ?? 250,
        maxLineLength: options.maxLineLength ?? DEFAULT_MAX_LINE,
        chunkSize: options.chunkSize ?? 262144,
      },
      ctx,
    );
  },
});
