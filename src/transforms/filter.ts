import { Transform, type TransformCallback } from 'node:stream';
import { defineStage, BATCH_HWM, carryMarks, hasMarks, isEncoded, markEncoded, type Batch } from '../stage.js';
import { valuesAt, valuesAtJson } from '../event-path.js';
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
  acceptsEncoded: true,
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
    const keepText = (text: string) => tests.every(({ p, re }) => valuesAtJson(text, p).some((v) => re.test(v))) !== invert;
    return new Transform({
      objectMode: true,
      readableHighWaterMark: BATCH_HWM,
      writableHighWaterMark: BATCH_HWM,
      transform(batch: Batch, _e, done: TransformCallback) {
        ctx.counters.in += batch.length;
        let out: Batch;
        if (isEncoded(batch)) {
          // Serialized events (from rules or coalesce): test a parsed copy, pass on the text
          // untouched when the next stage takes text, the parsed event when it does not.
          const kept: unknown[] = [];
          for (const text of batch) {
            if (keepText(text)) kept.push(ctx.encodedOutput ? text : JSON.parse(text));
          }
          out = carryMarks(batch, ctx.encodedOutput ? markEncoded(kept) : kept);
        } else out = carryMarks(batch, batch.filter(keep));
        ctx.counters.out += out.length;
        ctx.counters.dropped += batch.length - out.length;
        // An emptied batch still goes on when it carries a mark (a queue release, a resume cursor).
        done(null, out.length || hasMarks(out) ? out : undefined);
      },
    });
  },
});
