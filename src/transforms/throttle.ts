import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineStage, BATCH_HWM } from '../stage.js';

// Token bucket: `rate` events per second on average, at most `burst` at once.
// A batch is never split (spooled batches cannot be): it waits until the bucket
// is positive and may then take it into debt, which the refill pays back, so
// the long-run rate holds and bursts are smoothed to at most `burst` ahead.
// Counts events: plain event arrays count their length, spooled batches their `count`.

export interface ThrottleOptions {
  rate: number;
  burst?: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }
  /** Milliseconds to wait before `n` may pass (0 = now); takes the tokens when it returns 0. */
  take(n: number): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens <= 0) return Math.max(1, (-this.tokens / this.rate) * 1000 + 1);
    this.tokens -= n;
    return 0;
  }
}

export default defineStage<ThrottleOptions>({
  kind: 'transform',
  use: 'throttle',
  description: 'token-bucket rate limit: rate events/s on average, burst at most',
  schema: {
    type: 'object',
    properties: { rate: { type: 'number', exclusiveMinimum: 0 }, burst: { type: 'number', exclusiveMinimum: 0 } },
    required: ['rate'],
    additionalProperties: false,
  },
  create(options, ctx) {
    const bucket = new TokenBucket(options.rate, options.burst ?? Math.max(1, options.rate));
    return new Transform({
      objectMode: true,
      highWaterMark: BATCH_HWM,
      transform(batch: unknown[], _e, cb) {
        const n = batch.reduce<number>((k, x) => k + ((x as { count?: unknown })?.count !== undefined && (x as { data?: unknown }).data ? Number((x as { count: number }).count) : 1), 0);
        ctx.counters.in += n;
        const go = async () => {
          for (let wait = bucket.take(n); wait > 0; wait = bucket.take(n)) {
            ctx.counters.add('delayedMs', wait);
            await sleep(wait);
          }
          ctx.counters.out += n;
          cb(null, batch);
        };
        go().catch(cb);
      },
    });
  },
});
