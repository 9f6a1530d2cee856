import { Transform } from 'node:stream';
import os from 'node:os';
import { defineStage, BATCH_HWM } from '../stage.js';

// Agent side: what only the agent's host knows. Kept tiny on purpose: the
// server adds agent identity and DNS names (server-enrich).

export interface EnrichOptions {
  /** host.name to stamp; default os.hostname(). */
  host_name?: string;
}

export default defineStage<EnrichOptions>({
  kind: 'transform',
  use: 'enrich',
  description: 'agent-side enrichment: host.name',
  schema: { type: 'object', properties: { host_name: { type: 'string' } }, additionalProperties: false },
  create(options, ctx) {
    const name = options.host_name ?? os.hostname();
    return new Transform({
      objectMode: true,
      highWaterMark: BATCH_HWM,
      transform(batch: Array<Record<string, unknown>>, _e, cb) {
        for (const ev of batch) {
          const h = ev.host as Record<string, unknown> | undefined;
          if (!h || typeof h !== 'object') ev.host = { name };
          else if (h.name === undefined) h.name = name;
        }
        ctx.counters.in += batch.length;
        ctx.counters.out += batch.length;
        cb(null, batch);
      },
    });
  },
});
