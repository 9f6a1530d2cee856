import { Transform, type TransformCallback } from 'node:stream';
import { defineStage, BATCH_HWM, type Batch } from '../stage.js';
import { valuesAt } from '../event-path.js';
import { SkafeError } from '../errors.js';

export interface FilterOptions {
  /** dotted path → regular expression; every entry must match some value at that path. */
  where: Record<string, string>;
  /** Keep the events that do NOT match instead. */
  invert?: boolean;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['where'],
  properties: {
    where: { type: 'object', minProperties: 1, additionalProperties: { type: 'string' } },
    invert: { type: 'boolean', default: false },
  },
};

export default defineStage<FilterOptions>({
  kind: 'transform',
  use: 'filter',
  description: 'keep the events whose dotted fields match regular expressions (for routing to different sinks)',
  schema,
  create(options, ctx) {
    const tests = Object.entries(options.where).map(([p, re]) => {
      try {
        return { p, re: new RegExp(re) };
      } catch (err) {
        throw new SkafeError('SKAFE_DEFINITION_INVALID', `${ctx.name}: field "where.${p}": ${(err as Error).message}`, {
          stage: ctx.name,
          field: `where.${p}`,
        });
      }
    });
    const invert = options.invert ?? false;
    const keep = (e: unknown) => tests.every(({ p, re }) => valuesAt(e, p).some((v) => re.test(v))) !== invert;
    return new Transform({
      objectMode: true,
      readableHighWaterMark: BATCH_HWM,
      writableHighWaterMark: BATCH_HWM,
      transform(batch: Batch, _e, done: TransformCallback) {
        ctx.counters.in += batch.length;
        const out = batch.filter(keep);
        ctx.counters.out += out.length;
        ctx.counters.dropped += batch.length - out.length;
        done(null, out.length ? out : undefined);
      },
    });
  },
});
