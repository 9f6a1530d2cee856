import { Transform, type TransformCallback } from 'node:stream';
import path from 'node:path';
import { defineStage, BATCH_HWM, MAX_BATCH, isEncoded, markEncoded, markEncodedBytes, encodedBytes, decodeEncodedBytes, splitJsonLines, carryMarks, isBufferOwner, setBufferOwner, setRecycle, recycleBatch, type Batch, type StageContext } from '../stage.js';
import { RuleEngine } from '../rules/engine.js';
import { giveBuffer, takeBuffer, encodeLines } from '../buffer-pool.js';
import { assembleLines, hitItems } from '../rules/output.js';
import { FETCH_NOT_CONNECTED, type FetchFile } from '../rules/scripts/protocol.js';
import { getRelease, setRelease } from '../link/services.js';

export interface RulesOptions {
  rulesdir: string;
  scriptsdir?: string;
  /** Worker threads for the tree (default: one per core but one, at least one; 0 = in the pipeline's thread). */
  workers?: number;
  /** Interpreters per script (default 2). */
  scriptpool?: number;
  /** Per-call script timeout in ms (default 5000). */
  scripttimeout?: number;
  /** Reload rules and scripts on SIGHUP (default true). */
  reload?: boolean;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['rulesdir'],
  properties: {
    rulesdir: { type: 'string', minLength: 1, description: 'directory of *.rules files; relative to the definition file' },
    scriptsdir: { type: 'string', minLength: 1, description: 'directory of script rules (NAME.js/.mjs/.rb/.py); default: rulesdir' },
    workers: { type: 'integer', minimum: 0, maximum: 256 },
    scriptpool: { type: 'integer', minimum: 1, maximum: 64, default: 2 },
    scripttimeout: { type: 'integer', minimum: 1, maximum: 600000, default: 5000 },
    reload: { type: 'boolean', default: true },
  },
};

/** ctx.services name of `() => Promise<boolean>`: reload the rules now (what SIGHUP does). */
export const RULES_RELOAD = 'rules.reload';

export { hitItems, hitLines } from '../rules/output.js';

/** Items in pieces of at most MAX_BATCH (the array itself when it fits). */
function chunks<T>(items: T[]): T[][] {
  if (items.length === 0) return [];
  if (items.length <= MAX_BATCH) return [items];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_BATCH) out.push(items.slice(i, i + MAX_BATCH));
  return out;
}

/**
 * Events in, one item per (event, fired rule, log) out, in input order (see
 * src/rules/output.ts for the item). Takes encoded batches (JSON text from
 * coalesce's workers, as strings or as JSON-lines bytes) as well as objects
 * and hands them to the match workers as they are: strings cross threads far
 * cheaper than objects, and bytes are transferred without a copy, so between
 * coalesce and a bytes sink this thread only passes buffers along. When the next
 * stage takes encoded batches the workers also serialize the output, so this
 * thread only joins strings (or, for sinks that take encoded bytes, only
 * forwards the workers' bytes); otherwise it builds objects from the fired
 * nodes (parsing an encoded event only when something fired).
 */
export class RulesTransform extends Transform {
  // Output of the batches dispatched and not yet pushed, oldest first (output keeps input order):
  // each ready to push, in pieces of at most MAX_BATCH items.
  private readonly inflight: Array<Promise<Batch[]>> = [];
  private readonly encodedOutput: boolean;
  private readonly bytesOutput: boolean;
  private readonly maxInflight: number;
  private pumping: Promise<void> | null = null;
  private failed: Error | null = null;
  private readonly onHup = () => void this.engine.reload();

  constructor(
    private readonly engine: RuleEngine,
    private readonly ctx: StageContext,
    workers: number,
    reloadOnHup: boolean,
  ) {
    super({ objectMode: true, readableHighWaterMark: BATCH_HWM, writableHighWaterMark: BATCH_HWM });
    this.bytesOutput = ctx.encodedBytesOutput === true;
    this.encodedOutput = ctx.encodedOutput === true && !this.bytesOutput;
    // Enough batches in flight to keep every worker busy while one is being pushed; bounded.
    this.maxInflight = Math.max(2, workers * 4);
    if (reloadOnHup) process.on('SIGHUP', this.onHup);
    ctx.services.set(RULES_RELOAD, async () => (await engine.reload()).ok);
  }

  override _transform(batch: Batch, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) return cb(this.failed);
    this.ctx.counters.in += batch.length;
    // Text out, and workers that read bytes: the events go to a match worker as JSON-lines bytes
    // (transferred, read there by the addon) and the output lines come back as bytes. Text in
    // (the server's queue) is written into a pooled buffer for that, which costs less than
    // sending strings by structured clone for the worker to walk in JavaScript. A line with a
    // newline in it (pretty-printed text) cannot go as a JSON line and stays text.
    const viaBytes = this.bytesOutput || (this.encodedOutput && this.engine.takesBytes());
    let input = encodedBytes(batch);
    let inputOwner = input !== undefined && isBufferOwner(batch);
    if (input !== undefined && !viaBytes) {
      const decoded = carryMarks(batch, decodeEncodedBytes(batch));
      recycleBatch(batch); // decoded: its buffer can carry the next batch
      batch = decoded;
      input = undefined;
    } else if (input === undefined && viaBytes && batch.length > 0 && isEncoded(batch) && !batch.some((l) => l.includes('\n'))) {
      input = encodeLines(batch, takeBuffer);
      inputOwner = true;
    }
    const encoded = isEncoded(batch);
    // A transferred buffer comes back from the worker; the batch's maker may want it (recycleBatch).
    const inputBack = input !== undefined && inputOwner ? (b: ArrayBuffer) => recycleBatch(batch, b) || giveBuffer(b) : undefined;
    const run = input !== undefined ? { input, inputOwner, inputBack, lines: true, bytes: true } : { encoded, lines: this.encodedOutput, bytes: this.bytesOutput };
    const p = this.engine.run(input !== undefined ? [] : batch, run).then((r) => {
      this.ctx.counters.add('matched', r.matched);
      if (r.malformed) {
        const problem = { code: 'SKAFE_MALFORMED_EVENT', message: `event not valid JSON, skipped by the rules: ${JSON.stringify(r.malformedSample ?? '')}` } as const;
        for (let k = 0; k < r.malformed; k++) this.ctx.problem(problem);
      }
      let pieces: Batch[];
      if ('bytes' in r && !this.bytesOutput) {
        // Text wanted: the lines, and the buffer back to the pool.
        pieces = chunks(splitJsonLines(r.bytes)).map((c) => markEncoded(c));
        giveBuffer(r.bytes.buffer as ArrayBuffer);
      } else if ('bytes' in r) {
        // The workers' bytes, cut at every MAX_BATCH lines (views, no copy).
        pieces = [];
        let from = 0;
        for (const to of r.cuts) {
          pieces.push(markEncodedBytes(r.bytes.subarray(from, to), MAX_BATCH));
          from = to;
        }
        const rest = r.count - r.cuts.length * MAX_BATCH;
        if (rest > 0) pieces.push(markEncodedBytes(r.bytes.subarray(from), rest));
        if (pieces.length === 1) setBufferOwner(pieces[0]!);
        // The buffer is free again once every piece is written.
        let unwritten = pieces.length;
        const buffer = r.bytes.buffer as ArrayBuffer;
        for (const piece of pieces) setRecycle(piece, (returned) => --unwritten === 0 && giveBuffer(returned ?? buffer));
      } else if ('plan' in r) {
        const lines: string[] = [];
        assembleLines(r, r.gen.out, lines, batch);
        pieces = chunks(lines).map((c) => markEncoded(c));
      } else {
        const out: unknown[] = [];
        for (let i = 0; i < batch.length; i++) {
          const h = r.hits[i]!;
          if (h.length === 0) continue;
          const e: unknown = encoded ? JSON.parse(batch[i] as string) : batch[i];
          if (e && typeof e === 'object') hitItems(e as Record<string, unknown>, r.gen.out, h, out);
        }
        pieces = chunks(out);
      }
      // The server queue's release mark (src/link/services.ts) goes on the last piece only: the
      // queue may drop the input batch once that is written. Nothing fired: an empty batch
      // still carries it to the sink, as the queue's own do.
      const release = getRelease(batch);
      if (release !== undefined) {
        if (pieces.length === 0) pieces.push(this.bytesOutput ? markEncodedBytes(new Uint8Array(0), 0) : this.encodedOutput ? markEncoded([]) : []);
        setRelease(pieces[pieces.length - 1]!, release);
      }
      return pieces;
    });
    p.catch(() => {}); // observed by pump()
    this.inflight.push(p);
    this.pump();
    if (this.inflight.length < this.maxInflight) return cb();
    // Backpressure: the writer waits until the oldest batch is out.
    this.inflight[0]!.then(
      () => cb(),
      (e: Error) => cb(e),
    );
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = (async () => {
      while (this.inflight.length) {
        let pieces: Batch[];
        try {
          pieces = await this.inflight[0]!;
        } catch (e) {
          this.failed = e as Error;
          this.destroy(e as Error);
          return;
        }
        this.inflight.shift();
        for (const piece of pieces) {
          this.ctx.counters.out += piece.length;
          this.push(piece);
        }
      }
    })().finally(() => {
      this.pumping = null;
    });
  }

  override _flush(cb: TransformCallback): void {
    // A failed batch stays first in line (pump stops there and destroys the stream): stop waiting
    // then, or this loop would spin on it forever.
    const wait = async () => {
      while ((this.inflight.length || this.pumping) && !this.failed) {
        if (this.pumping) await this.pumping;
        else this.pump();
      }
    };
    wait().then(
      () => (this.failed ? cb(this.failed) : cb()),
      (e: Error) => cb(e),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    process.off('SIGHUP', this.onHup);
    this.ctx.services.delete(RULES_RELOAD);
    this.engine.close().then(
      () => cb(err),
      () => cb(err),
    );
  }
}

export default defineStage<RulesOptions>({
  kind: 'transform',
  use: 'rules',
  description: 'run each event through the SKAFE rule tree (.rules files, match and script rules); emit one item per fired log/alert',
  schema,
  acceptsEncoded: true,
  acceptsEncodedBytes: true,
  async create(options, ctx) {
    const engine = await RuleEngine.create({
      rulesdir: path.resolve(ctx.baseDir, options.rulesdir),
      scriptsdir: options.scriptsdir !== undefined ? path.resolve(ctx.baseDir, options.scriptsdir) : undefined,
      workers: options.workers,
      scriptPool: options.scriptpool,
      scriptTimeoutMs: options.scripttimeout,
      log: ctx.log,
      count: (name, n = 1) => ctx.counters.add(name, n),
      // Looked up per call: the agent link registers it after this stage is built.
      fetchFile: (req) => {
        const f = ctx.services.get('fetchFile') as FetchFile | undefined;
        return f ? f(req) : Promise.reject(new Error(FETCH_NOT_CONNECTED));
      },
    });
    return new RulesTransform(engine, ctx, engine.workerCount, options.reload ?? true);
  },
});
