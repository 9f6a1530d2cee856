import { Writable } from 'node:stream';
import fs from 'node:fs/promises';
import path from 'node:path';
import { defineStage, BATCH_HWM, recycleBatch, type Batch, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { toJsonLines, DELIVERED, type DeliveredHook } from './serialize.js';
import type { SinkPosition } from '../link/services.js';

export interface JsonlOptions {
  path: string;
  /** fsync after every batch: what the server's acknowledgements need. */
  fsync?: boolean;
  mode?: number;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    path: { type: 'string', minLength: 1, description: 'file to append JSON lines to; relative to the definition file' },
    fsync: { type: 'boolean', default: false },
    mode: { type: 'integer', minimum: 0, maximum: 0o777, default: 0o640 },
  },
};

/**
 * Appends one JSON object per line. A batch is one append (O_APPEND) and a
 * short write is finished before the next batch, so a reader never sees a torn
 * line. SIGHUP reopens the file by name, for logrotate.
 */
// A sink writing faster than this many bytes between syncs syncs in the background (see syncInBackground).
const SYNC_EVERY_BYTES = 32 * 1024 * 1024;

export class JsonlSink extends Writable {
  private fh: fs.FileHandle | undefined;
  /** Where the file ends after our last complete write: what the server queue stores with a release. */
  private pos: SinkPosition | undefined;
  private reopenWanted = false;
  private readonly onHup = () => {
    this.reopenWanted = true;
  };

  constructor(
    private readonly file: string,
    private readonly opts: { fsync: boolean; mode: number },
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    process.on('SIGHUP', this.onHup);
  }

  override _construct(cb: (err?: Error | null) => void): void {
    this.open().then(() => cb(), cb);
  }

  private async open(): Promise<void> {
    try {
      try {
        this.fh = await fs.open(this.file, 'a', this.opts.mode);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await mkdirs(path.dirname(this.file));
        this.fh = await fs.open(this.file, 'a', this.opts.mode);
      }
    } catch (err) {
      throw new SkafeError('SKAFE_OUTPUT_OPEN', `cannot open ${this.file} for writing: ${(err as Error).message}`, {
        file: this.file,
        cause: err,
      });
    }
    const st = await this.fh.stat();
    this.pos = { path: this.file, dev: st.dev, ino: st.ino, size: st.size };
  }

  override _write(batch: Batch<unknown>, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeBatch(batch).then(() => cb(), cb);
  }

  private async writeBatch(batch: Batch<unknown>): Promise<void> {
    if (this.reopenWanted) {
      this.reopenWanted = false;
      const old = this.fh;
      this.fh = undefined;
      await this.syncing;
      await old?.datasync();
      await old?.close();
      await this.open();
      this.ctx.counters.add('reopened');
    }
    const text = toJsonLines(batch);
    const data = typeof text === 'string' ? Buffer.from(text) : text;
    this.ctx.counters.in += batch.length;
    let off = 0;
    try {
      while (off < data.length) {
        const { bytesWritten } = await this.fh!.write(data, off, data.length - off);
        off += bytesWritten;
      }
      if (this.opts.fsync) await this.fh!.datasync();
      else this.syncInBackground(data.length);
    } catch (err) {
      throw new SkafeError('SKAFE_OUTPUT_WRITE', `writing ${this.file} failed: ${(err as Error).message}`, {
        file: this.file,
        cause: err,
      });
    }
    this.ctx.counters.out += batch.length;
    let position: SinkPosition | undefined;
    if (this.pos) {
      // O_APPEND: our bytes went to the end; counted, not stat'ed (a stat could land inside another writer's write)
      this.pos.size += data.length;
      position = { ...this.pos };
    }
    (this.ctx.services.get(DELIVERED) as DeliveredHook | undefined)?.(batch, this.ctx.name, position);
    recycleBatch(batch);
  }

  // Bytes written since the last sync began, and that sync while it runs. A
  // long write run is synced as it goes, one sync at a time beside the
  // writes: the data reaches the disk sooner, and the sync at the end (before
  // a replay may exit 0) has only the last stretch left to wait for.
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private syncError: Error | undefined;

  private syncInBackground(bytes: number): void {
    if (this.syncError) throw this.syncError;
    this.unsynced += bytes;
    if (this.unsynced < SYNC_EVERY_BYTES || this.syncing || !this.fh) return;
    this.unsynced = 0;
    this.syncing = this.fh.datasync().then(
      () => {
        this.syncing = undefined;
      },
      (err: Error) => {
        this.syncing = undefined;
        this.syncError = err;
      },
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    if (!fh) return cb();
    Promise.resolve(this.syncing)
      .then(() => {
        if (this.syncError) throw this.syncError;
        return fh.datasync();
      })
      .then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    process.off('SIGHUP', this.onHup);
    const fh = this.fh;
    this.fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}

// fs.mkdir({recursive}) spins forever on some pseudo file systems (/proc): walk up ourselves.
async function mkdirs(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
    await mkdirs(path.dirname(dir));
    await fs.mkdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

export default defineStage<JsonlOptions>({
  kind: 'sink',
  use: 'jsonl',
  acceptsEncoded: true,
  acceptsEncodedBytes: true,
  description: 'append events to a file as JSON lines (never a torn line; SIGHUP reopens it for logrotate)',
  schema,
  create(options, ctx) {
    return new JsonlSink(path.resolve(ctx.baseDir, options.path), { fsync: options.fsync ?? false, mode: options.mode ?? 0o640 }, ctx);
  },
});
