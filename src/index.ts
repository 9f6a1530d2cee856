// skafe as a library: the same stages the definition files use, composed in code.
//
//   import { chain, stages, each } from 'skafe';
//   await pipeline(chain([stages.file({ path: 'audit.log' }), stages.coalesce(), each(e => …), stages.jsonl({ path: 'out.jsonl' })]));
//
// Streams pass *batches* (arrays of events) between stages; `each` lifts a
// per-event function into that world (return undefined/null to drop an event).
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import chainImpl from 'stream-chain';
import { stages as registry } from './registry.js';
import { StageCounters, BATCH_HWM, type Batch, type Logger } from './stage.js';
import { makeContext, stderrLogger } from './pipeline.js';
import { validateDefinition } from './pipeline.js';
import { SkafeError } from './errors.js';

export { buildPipeline, loadDefinition, validateDefinition, Pipeline, type PipelineDefinition, type StageSpec } from './pipeline.js';
export { SkafeError, ErrorCodes, isSkafeError, type ErrorCode } from './errors.js';
export { defineStage, StageCounters, MAX_BATCH, type Batch, type StageDefinition, type StageContext, type Logger } from './stage.js';
export { parseRecordLine, type AuditRecord } from './audit/record.js';
export { interpret } from './audit/interpret.js';
export type { AuditEvent } from './audit/event.js';
export { valuesAt } from './event-path.js';
export { registry };

/** stream-chain's `chain`: streams and functions into one Duplex. */
export const chain = chainImpl;

export interface StageOptionsCommon {
  baseDir?: string;
  log?: Logger;
  signal?: AbortSignal;
  services?: Map<string, unknown>;
  counters?: StageCounters;
}

/** Check options as a definition file would, then make the stage's context. */
function prepare(use: string, options: Record<string, unknown>, common: StageOptionsCommon, label: string) {
  const def = registry[use];
  if (!def) throw new SkafeError('SKAFE_UNKNOWN_STAGE', `unknown stage "${use}"`, { field: 'use' });
  // Reuse the definition-file validation so code and files get the same errors.
  const probe =
    def.kind === 'source'
      ? [{ use, ...options }, { use: 'stdout' }]
      : def.kind === 'sink'
        ? [{ use: 'stdin' }, { use, ...options }]
        : [{ use: 'stdin' }, { use, ...options }, { use: 'stdout' }];
  validateDefinition({ stages: probe }, label);
  const ctx = makeContext(use, 0, common.counters ?? new StageCounters(), {
    baseDir: common.baseDir ?? process.cwd(),
    log: common.log ?? stderrLogger,
    signal: common.signal ?? new AbortController().signal,
    services: common.services ?? new Map(),
  });
  return { def, ctx };
}

// Typed as Duplex so any stage slots into stream.pipeline/chain; sources are only readable, sinks only writable.
/** Create one registered stage by name, its options checked against its schema as in a definition file. */
export function stage(use: string, options: Record<string, unknown> = {}, common: StageOptionsCommon = {}): Duplex {
  const { def, ctx } = prepare(use, options, common, `stages.${use}()`);
  const s = def.create(options, ctx);
  if (s instanceof Promise) throw new SkafeError('SKAFE_USAGE', `stage "${use}" is asynchronous; use createStage`);
  return s as Duplex;
}

/** Like `stage()`, for every stage including those that set themselves up asynchronously (rules, server-enrich). */
export async function createStage(use: string, options: Record<string, unknown> = {}, common: StageOptionsCommon = {}): Promise<Duplex> {
  const { def, ctx } = prepare(use, options, common, `createStage(${use})`);
  return (await def.create(options, ctx)) as Duplex;
}

type StageFactory = (options?: Record<string, unknown>, common?: StageOptionsCommon) => Duplex;

/** `stages.file({path})`, `stages.coalesce()`, `stages.jsonl({path})`, … one factory per registered stage. */
export const stages: Record<string, StageFactory> = new Proxy({} as Record<string, StageFactory>, {
  get: (_t, name: string) => (registry[name] ? (o: Record<string, unknown> = {}, c: StageOptionsCommon = {}) => stage(name, o, c) : undefined),
  has: (_t, name: string) => name in registry,
  ownKeys: () => Object.keys(registry),
  getOwnPropertyDescriptor: (_t, name: string) => (name in registry ? { enumerable: true, configurable: true } : undefined),
});

/** A per-event step for code pipelines: fn(event) → event (maybe changed or new) or null/undefined to drop it. */
export function each<I = any, O = any>(fn: (item: I) => O | null | undefined): Transform {
  return new Transform({
    objectMode: true,
    readableHighWaterMark: BATCH_HWM,
    writableHighWaterMark: BATCH_HWM,
    transform(batch: Batch<I>, _e, done: TransformCallback) {
      const out: O[] = [];
      for (const item of batch) {
        const r = fn(item);
        if (r !== null && r !== undefined) out.push(r);
      }
      done(null, out.length ? out : undefined);
    },
  });
}
