import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable, type Readable, type Duplex, type Stream } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { SkafeError } from './errors.js';
import { DELIVERED } from './sinks/serialize.js';
import { stages as registry } from './registry.js';
import { StageCounters, BATCH_HWM, carryMarks, isEncoded, markEncoded, type Batch, type Logger, type StageContext, type StageDefinition, type StageStream } from './stage.js';

/** One entry of `stages` in a definition file. */
export interface StageSpec {
  use: string;
  /** Optional name for messages and --stats (default: the `use` name). */
  id?: string;
  [option: string]: unknown;
}

/** `{"use":"fanout","branches":[[…],[…]]}`: every event goes down every branch (each ends in a sink). */
export interface FanoutSpec {
  use: 'fanout';
  id?: string;
  branches: StageSpec[][];
}

export interface PipelineDefinition {
  description?: string;
  stages: StageSpec[];
}

const definitionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['stages'],
  properties: {
    $schema: { type: 'string' },
    description: { type: 'string' },
    stages: { type: 'array', minItems: 1, items: { type: 'object', required: ['use'], properties: { use: { type: 'string' }, id: { type: 'string' } } } },
  },
};

const ajv = new Ajv({ allErrors: false, strict: false });
const validateTop = ajv.compile(definitionSchema);
const stageValidators = new WeakMap<StageDefinition, ValidateFunction>();

function validatorFor(def: StageDefinition): ValidateFunction {
  let v = stageValidators.get(def);
  if (!v) {
    // `use` and `id` belong to the definition file, not to the stage's options.
    const schema = { ...def.schema, properties: { ...(def.schema.properties as object), use: {}, id: { type: 'string' } } };
    v = ajv.compile(schema);
    stageValidators.set(def, v);
  }
  return v;
}

function describeAjvError(e: ErrorObject, strip = ''): string {
  const field = (e.instancePath || '').slice(strip.length).replace(/^\//, '').replace(/\//g, '.');
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown field "${field ? field + '.' : ''}${(e.params as { additionalProperty: string }).additionalProperty}"`;
    case 'required':
      return `missing required field "${field ? field + '.' : ''}${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `field "${field}" must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    default:
      return `field "${field}" ${e.message ?? 'is invalid'}`;
  }
}

/** Where a stage sits, for messages: `stage 2 (coalesce)` or `stage 3.1.2 (jsonl "alerts")`. */
function stageLabel(pos: string, spec: StageSpec): string {
  return `stage ${pos} (${spec.use}${spec.id ? ` "${spec.id}"` : ''})`;
}

/**
 * Check a definition completely before anything starts: its shape, every stage
 * name, every stage's options against that stage's schema, and stage order.
 * Errors name the file, the stage (position and `use`) and the field.
 */
export function validateDefinition(def: unknown, file = '<definition>'): PipelineDefinition {
  if (!validateTop(def)) {
    const e = validateTop.errors![0]!;
    const m = /^\/stages\/(\d+)/.exec(e.instancePath);
    const where = m ? `stage ${Number(m[1]) + 1}: ` : '';
    throw new SkafeError('SKAFE_DEFINITION_INVALID', `${file}: ${where}${describeAjvError(e, m ? m[0] : '')}`, { file });
  }
  const d = def as unknown as PipelineDefinition;
  checkStages(d.stages, file, '', true);
  return d;
}

function checkStages(list: StageSpec[], file: string, prefix: string, needSource: boolean): void {
  list.forEach((spec, i) => {
    const pos = `${prefix}${i + 1}`;
    const label = stageLabel(pos, spec);
    const last = i === list.length - 1;
    if (spec.use === 'fanout') {
      const f = spec as unknown as FanoutSpec;
      if (!last) throw new SkafeError('SKAFE_STAGE_ORDER', `${file}: ${label}: fanout must be the last stage`, { file, stage: label });
      if (!Array.isArray(f.branches) || f.branches.length === 0 || !f.branches.every((b) => Array.isArray(b) && b.length > 0)) {
        throw new SkafeError('SKAFE_DEFINITION_INVALID', `${file}: ${label}: field "branches" must be a non-empty array of non-empty stage lists`, {
          file,
          stage: label,
          field: 'branches',
        });
      }
      const extra = Object.keys(spec).filter((k) => !['use', 'id', 'branches'].includes(k));
      if (extra.length) throw new SkafeError('SKAFE_DEFINITION_INVALID', `${file}: ${label}: unknown field "${extra[0]}"`, { file, stage: label, field: extra[0] });
      f.branches.forEach((b, j) => {
        b.forEach((s, k) => {
          if (!s || typeof s !== 'object' || typeof s.use !== 'string') {
            throw new SkafeError('SKAFE_DEFINITION_INVALID', `${file}: stage ${pos}.${j + 1}.${k + 1}: missing required field "use"`, { file });
          }
        });
        checkStages(b, file, `${pos}.${j + 1}.`, false);
      });
      return;
    }
    const def = registry[spec.use];
    if (!def) {
      const known = Object.keys(registry).concat('fanout').sort().join(', ');
      throw new SkafeError('SKAFE_UNKNOWN_STAGE', `${file}: ${label}: unknown stage "${spec.use}" (known: ${known})`, {
        file,
        stage: label,
        field: 'use',
      });
    }
    const v = validatorFor(def);
    if (!v(spec)) {
      const e = v.errors![0]!;
      throw new SkafeError('SKAFE_DEFINITION_INVALID', `${file}: ${label}: ${describeAjvError(e)}`, {
        file,
        stage: label,
        field: e.instancePath.replace(/^\//, '') || (e.params as { additionalProperty?: string; missingProperty?: string }).additionalProperty || (e.params as { missingProperty?: string }).missingProperty,
      });
    }
    const want = i === 0 && needSource ? 'source' : last ? 'sink' : 'transform';
    if (def.kind !== want) {
      const why = want === 'source' ? 'the first stage must be a source' : want === 'sink' ? 'the last stage must be a sink (or fanout)' : `a ${def.kind} cannot sit in the middle`;
      throw new SkafeError('SKAFE_STAGE_ORDER', `${file}: ${label}: "${spec.use}" is a ${def.kind}; ${why}`, { file, stage: label });
    }
  });
}

/** Read, parse and validate a definition file. */
export function loadDefinition(file: string): PipelineDefinition {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SkafeError('SKAFE_DEFINITION_READ', `${file}: cannot read: ${(err as Error).message}`, { file, cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const m = /position (\d+)/.exec(msg);
    let where = '';
    if (m) {
      const before = text.slice(0, Number(m[1]));
      const line = before.split('\n').length;
      where = `:${line}:${Number(m[1]) - before.lastIndexOf('\n')}`;
    }
    throw new SkafeError('SKAFE_DEFINITION_JSON', `${file}${where}: not valid JSON: ${msg}`, { file, cause: err });
  }
  return validateDefinition(json, file);
}

export interface StageInfo {
  label: string;
  use: string;
  kind: StageKind | 'fanout';
  counters: StageCounters;
}
type StageKind = StageDefinition['kind'];

export interface BuildOptions {
  /** Relative paths in stage options resolve against this (the definition file's directory). */
  baseDir?: string;
  file?: string;
  log?: Logger;
  /** Shared side channels (see StageContext.services). */
  services?: Map<string, unknown>;
}

export const stderrLogger: Logger = {
  info: (m) => process.stderr.write(`skafe: ${m}\n`),
  warn: (m) => process.stderr.write(`skafe: warning: ${m}\n`),
  error: (m) => process.stderr.write(`skafe: error: ${m}\n`),
};

/** A built, not yet running pipeline. `run()` resolves once every sink has flushed. */
export class Pipeline {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    readonly streams: StageStream[],
    readonly stages: StageInfo[],
    readonly services: Map<string, unknown>,
    abort: AbortController,
  ) {
    this.abort = abort;
  }

  run(): Promise<void> {
    this.running ??= streamPipeline(this.streams as unknown as [Readable, ...Duplex[], Writable]);
    return this.running;
  }

  /** Ask the sources to end; everything in flight drains through to the sinks. */
  stop(): void {
    this.abort.abort();
  }

  /** Tear down at once (a second Ctrl-C). */
  destroy(err?: Error): void {
    for (const s of this.streams) (s as Stream & { destroy(e?: Error): void }).destroy(err);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

export async function buildPipeline(def: PipelineDefinition, opts: BuildOptions = {}): Promise<Pipeline> {
  const file = opts.file ?? '<definition>';
  const baseDir = opts.baseDir ?? (opts.file ? path.dirname(path.resolve(opts.file)) : process.cwd());
  const log = opts.log ?? stderrLogger;
  const services = opts.services ?? new Map<string, unknown>();
  const abort = new AbortController();
  const infos: StageInfo[] = [];
  const streams = await buildList(def.stages, '', { baseDir, file, log, services, signal: abort.signal }, infos);
  return new Pipeline(streams, infos, services, abort);
}

interface BuildEnv {
  baseDir: string;
  file: string;
  log: Logger;
  services: Map<string, unknown>;
  signal: AbortSignal;
}

async function buildList(list: StageSpec[], prefix: string, env: BuildEnv, infos: StageInfo[]): Promise<StageStream[]> {
  const out: StageStream[] = [];
  for (let i = 0; i < list.length; i++) {
    const spec = list[i]!;
    const pos = `${prefix}${i + 1}`;
    const label = stageLabel(pos, spec);
    if (spec.use === 'fanout') {
      out.push(await buildFanout(spec as unknown as FanoutSpec, pos, label, env, infos));
      continue;
    }
    const def = registry[spec.use];
    if (!def) throw new SkafeError('SKAFE_UNKNOWN_STAGE', `${env.file}: ${label}: unknown stage "${spec.use}"`, { stage: label });
    const counters = new StageCounters();
    infos.push({ label, use: spec.use, kind: def.kind, counters });
    const { use: _u, id: _i, ...options } = spec;
    const ctx = makeContext(label, i, counters, env);
    const next = list[i + 1];
    // A fan-out takes serialized events too: it parses them once for branches that need objects.
    ctx.encodedOutput = next !== undefined && (next.use === 'fanout' || registry[next.use]?.acceptsEncoded === true);
    ctx.encodedBytesOutput = next !== undefined && registry[next.use]?.acceptsEncodedBytes === true;
    ctx.rawRecordsOutput = next !== undefined && registry[next.use]?.acceptsRawRecords === true;
    out.push(await def.create(options, ctx));
  }
  return out;
}

export function makeContext(label: string, index: number, counters: StageCounters, env: Omit<BuildEnv, 'file'>): StageContext {
  const log: Logger = {
    info: (m, f) => env.log.info(`${label}: ${m}`, f),
    warn: (m, f) => env.log.warn(`${label}: ${m}`, f),
    error: (m, f) => env.log.error(`${label}: ${m}`, f),
  };
  return {
    baseDir: env.baseDir,
    index,
    name: label,
    counters,
    log,
    signal: env.signal,
    services: env.services,
    problem(p) {
      counters.malformed++;
      if (counters.firstReport(p.code)) {
        const where = p.file ? `${p.file}${p.line !== undefined ? `:${p.line}` : ''}: ` : '';
        log.warn(`${where}${p.message} (${p.code}; further ones are counted, not shown)`);
      }
    },
  };
}

async function buildFanout(spec: FanoutSpec, pos: string, label: string, env: BuildEnv, infos: StageInfo[]): Promise<StageStream> {
  const counters = new StageCounters();
  infos.push({ label, use: 'fanout', kind: 'fanout', counters });
  const acks = new FanoutAcks(env.services, spec.branches.length);
  const branches: StageStream[][] = [];
  for (let j = 0; j < spec.branches.length; j++) {
    branches.push(await buildList(spec.branches[j]!, `${pos}.${j + 1}.`, { ...env, services: acks.servicesFor(j) }, infos));
  }
  const heads = spec.branches.map((b) => (b[0]!.use === 'fanout' ? false : registry[b[0]!.use]?.acceptsEncoded === true));
  return new Fanout(branches, counters, heads);
}

/**
 * End-to-end acknowledgement through a fan-out: a batch counts as delivered
 * (DELIVERED, which releases it from the server queue) only once every branch's
 * sink has delivered it — the worst status wins, as in Vector. Each branch sees
 * the pipeline's services, except that its DELIVERED is this collector.
 */
class FanoutAcks {
  private readonly done: number[];
  private reported = -1;

  constructor(
    private readonly parent: Map<string, unknown>,
    branches: number,
  ) {
    this.done = new Array(branches).fill(-1);
  }

  servicesFor(branch: number): Map<string, unknown> {
    const parent = this.parent;
    const hook = (batch: Batch, sink: string, position?: unknown) => this.delivered(branch, batch, sink, position);
    return new (class extends Map<string, unknown> {
      override get(key: string): unknown {
        return key === DELIVERED ? (parent.has(DELIVERED) ? hook : undefined) : parent.get(key);
      }
      override set(key: string, value: unknown): this {
        parent.set(key, value);
        return this;
      }
      override has(key: string): boolean {
        return parent.has(key);
      }
    })();
  }

  private delivered(branch: number, batch: Batch, sink: string, position?: unknown): void {
    const hook = this.parent.get(DELIVERED) as ((b: Batch, s: string, p?: unknown, written?: number) => void) | undefined;
    if (!hook) return;
    const rel = (batch as { release?: number }).release;
    // Each branch's progress (where its file stands after which batch) goes on as it comes; the
    // release waits for the slowest branch.
    hook([], sink, position, rel);
    if (rel === undefined) return;
    if (rel > this.done[branch]!) this.done[branch] = rel;
    const all = Math.min(...this.done);
    if (all > this.reported) {
      this.reported = all;
      const b: Batch = [];
      Object.defineProperty(b, 'release', { value: all, enumerable: false });
      hook(b, sink);
    }
  }
}

/**
 * Writes every batch into every branch and takes the next only when all
 * branches accepted it: the slowest branch sets the pace (no branch buffers
 * without bound). Branches get their own array; the events in it are shared,
 * so stages must not change events in place.
 */
class Fanout extends Writable {
  private readonly heads: Writable[];
  private readonly done: Promise<void>[];

  constructor(
    branches: StageStream[][],
    private readonly counters: StageCounters,
    /** Per branch: its first stage takes serialized events (else they are parsed for it, once). */
    private readonly takesEncoded: boolean[],
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    this.heads = branches.map((b) => b[0] as Writable);
    this.done = branches.map((b) =>
      b.length === 1 ? finishedWritable(b[0] as Writable) : streamPipeline(b as unknown as [Duplex, ...Duplex[], Writable]),
    );
    // A branch failing fails the whole pipeline.
    for (const d of this.done) d.catch((err) => this.destroy(err));
  }

  override _write(batch: Batch, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.counters.in += batch.length;
    let pending = this.heads.length;
    let failed = false;
    const one = (err?: Error | null) => {
      if (failed) return;
      if (err) {
        failed = true;
        return cb(err);
      }
      if (--pending === 0) {
        this.counters.out += batch.length;
        cb();
      }
    };
    let parsed: Batch | undefined;
    this.heads.forEach((h, i) => {
      let b: Batch;
      if (isEncoded(batch) && !this.takesEncoded[i]) b = carryMarks(batch, (parsed ??= batch.map((x) => JSON.parse(x))).slice());
      else b = i === 0 ? batch : carryMarks(batch, isEncoded(batch) ? markEncoded(batch.slice()) : batch.slice());
      h.write(b, one);
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    for (const h of this.heads) h.end();
    Promise.all(this.done).then(() => cb(), cb);
  }

  // Torn down (an error elsewhere, a second Ctrl-C): the branches go with it.
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    for (const h of this.heads) if (!h.destroyed) h.destroy(err ?? undefined);
    cb(err);
  }
}

function finishedWritable(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    w.once('finish', () => resolve());
    w.once('close', () => resolve());
    w.once('error', reject);
  });
}

/** Load a definition file, build it, run it to completion (for finite sources) or until stop(). */
export async function runDefinitionFile(file: string, opts: Omit<BuildOptions, 'file'> = {}): Promise<Pipeline> {
  const def = loadDefinition(file);
  return buildPipeline(def, { ...opts, file });
}
