import { Writable } from 'node:stream';
import { BATCH_HWM, recycleBatch, type Batch, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { toJsonLines, DELIVERED, type DeliveredHook } from './serialize.js';

/** JSON lines to stdout or stderr, waiting for 'drain' so a slow reader slows the pipeline. */
export class StdioSink extends Writable {
  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
  }

  override _write(batch: Batch<unknown>, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.ctx.counters.in += batch.length;
    const done = (err?: Error | null) => {
      if (err) return cb(new SkafeError('SKAFE_OUTPUT_WRITE', `writing ${this.label} failed: ${err.message}`, { cause: err }));
      this.ctx.counters.out += batch.length;
      (this.ctx.services.get(DELIVERED) as DeliveredHook | undefined)?.(batch, this.ctx.name);
      recycleBatch(batch);
      cb();
    };
    // The write callback fires once the data is handed to the OS: that is our flush.
    this.out.write(toJsonLines(batch), (err) => done(err));
  }
}
