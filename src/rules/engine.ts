import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { loadRuleSet, type RuleSet } from './load.js';
import { RuleTree } from './tree.js';
import { outputNodes, type OutputNode } from './output.js';
import { evaluateBatch, type BatchRequest, type BatchResult } from './batch.js';
import { ScriptPool, type ScriptPoolOptions } from './scripts/pool.js';
import type { FromMatchWorker, ToMatchWorker } from './match-worker.js';
import type { FetchFile } from './scripts/protocol.js';
import type { InterpreterCommands } from './scripts/interpreter.js';
import { splitJsonLines, transferable, type Logger } from '../stage.js';
import { takeBuffer, giveBuffer, OutputSize } from '../buffer-pool.js';
import { workerExecArgv } from '../worker-exec-argv.js';

// The rule engine: a rule set generation (tree + script pools), a pool of
// worker threads that evaluate batches against it, and atomic replacement of
// the generation on reload. A batch is evaluated entirely by the generation it
// was dispatched under, so across a reload no event is lost or seen twice.

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Match workers when none are asked for: one per core but one, at least one.
 * The pipeline's own thread has work of its own (TLS, the queue, the sinks;
 * on an agent's replay, coalesce's workers too), and a worker per core leaves
 * it none: on two cores a second worker made the server with 100 rules slower,
 * not faster (bench/delivery.ts with rules: 24.7–28.7k events/s against
 * 29.0–30.8k with one, three pairs; the replay pipeline 0.84–0.93×).
 */
export function defaultWorkers(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

export interface EngineOptions {
  rulesdir: string;
  scriptsdir?: string | undefined;
  /** Worker threads evaluating the tree; 0 evaluates on the calling thread. Default: defaultWorkers(). */
  workers?: number | undefined;
  /** Interpreters per script (default 2) and per-call timeout (default 5000 ms). */
  scriptPool?: number | undefined;
  scriptTimeoutMs?: number | undefined;
  log: Logger;
  count: (name: string, n?: number) => void;
  fetchFile?: FetchFile | undefined;
  commands?: InterpreterCommands | undefined;
}

export interface Generation {
  gen: number;
  set: RuleSet;
  tree: RuleTree;
  /** What the output items need of each node (name, ruleset, trigger). */
  out: OutputNode[];
  /** Pool per script node index. */
  pools: Map<number, ScriptPool>;
  inflight: number;
  retired: boolean;
}

interface PendingBatch {
  gen: Generation;
  events: unknown[];
  encoded: boolean;
  /** Bytes of JSON-lines input sent, when the output comes back as bytes: for outputSize. */
  inputBytes: number;
  inputBack: ((b: ArrayBuffer) => void) | undefined;
  resolve(r: BatchResult): void;
  reject(e: Error): void;
}

/** How a batch is given and what comes back (see batch.ts). */
export interface RunOptions {
  /** The events are JSON strings (an encoded batch). */
  encoded?: boolean;
  /** Return the finished output lines instead of the fired nodes. */
  lines?: boolean;
  /** With lines: as JSON-lines bytes. */
  bytes?: boolean;
  /**
   * The batch as JSON-lines bytes (an ENCODED_BYTES batch) and `events` empty.
   * Only with `bytes`: the bytes go to a worker without a copy and only bytes
   * come back, so this thread never touches the events. Decoded here when they
   * cannot (no workers, or script rules, which run on this thread's pools).
   */
  input?: Uint8Array;
  /** The input's batch owns its whole buffer (BUFFER_OWNER): it may be transferred, not copied. */
  inputOwner?: boolean;
  /** Where the input's buffer goes when it was transferred and comes back (default: this thread's pool). */
  inputBack?: (b: ArrayBuffer) => void;
}

export class RuleEngine {
  private current!: Generation;
  private nextGen = 1;
  private workers: Worker[] = [];
  private busy: number[] = [];
  private answers: number[][] = [];
  private pending = new Map<number, PendingBatch>();
  // Output bytes per input byte: the size of spare buffers to send.
  private readonly outputSize = new OutputSize();
  private nextBid = 1;
  private closed = false;
  private workerError: Error | null = null;

  private constructor(private readonly opts: EngineOptions) {}

  static async create(opts: EngineOptions): Promise<RuleEngine> {
    const e = new RuleEngine(opts);
    e.current = await e.build();
    e.logLoaded(e.current.set);
    const n = opts.workers ?? defaultWorkers();
    for (let i = 0; i < n; i++) e.startWorker();
    for (let i = 0; i < n; i++) e.post(i, { t: 'load', gen: e.current.gen, set: e.current.set });
    return e;
  }

  get ruleSet(): RuleSet {
    return this.current.set;
  }

  get generation(): Generation {
    return this.current;
  }

  /** Load and start a full generation, or throw (SKAFE_RULES_INVALID, or a script that fails to load). */
  private async build(): Promise<Generation> {
    const set = loadRuleSet(this.opts.rulesdir, { scriptsdir: this.opts.scriptsdir });
    const pools = new Map<number, ScriptPool>();
    const byFile = new Map<string, ScriptPool>();
    const poolOpts: ScriptPoolOptions = {
      size: this.opts.scriptPool ?? 2,
      timeoutMs: this.opts.scriptTimeoutMs ?? 5000,
      log: this.opts.log,
      count: (n, k) => this.opts.count(n, k),
      fetchFile: this.opts.fetchFile,
      ...(this.opts.commands ? { commands: this.opts.commands } : {}),
    };
    try {
      for (const [i, n] of set.nodes.entries()) {
        if (!n.script) continue;
        // Rules that call the same script share its interpreters.
        let p = byFile.get(n.script.file);
        if (!p) {
          p = new ScriptPool(n.script, poolOpts);
          byFile.set(n.script.file, p);
          await p.start();
        }
        pools.set(i, p);
      }
    } catch (e) {
      await Promise.all([...byFile.values()].map((p) => p.close()));
      throw e;
    }
    return { gen: this.nextGen++, set, tree: new RuleTree(set), out: outputNodes(set.nodes), pools, inflight: 0, retired: false };
  }

  private logLoaded(set: RuleSet): void {
    for (const f of set.files) this.opts.log.info(`Loading rules file ${f}`);
    for (const s of set.skipped) this.opts.log.info(`Rule [${s.name}] ${s.reason}`, { file: s.file, line: s.line });
    for (const w of set.warnings) this.opts.log.warn(w);
    this.opts.log.info(`Rule engine started: ${set.nodes.length} rules from ${set.files.length} files`);
  }

  private startWorker(): void {
    const i = this.workers.length;
    const w = new Worker(path.join(here, 'match-worker.js'), { execArgv: workerExecArgv() });
    this.workers.push(w);
    this.busy.push(0);
    this.answers.push([]);
    w.on('message', (m: FromMatchWorker) => this.onWorkerMessage(i, m));
    w.on('error', (e) => {
      this.workerError = e;
      this.opts.log.error(`rule worker ${i} failed: ${e.message}`);
      for (const [bid, p] of this.pending) {
        this.pending.delete(bid);
        p.reject(e);
      }
    });
  }

  private post(i: number, m: ToMatchWorker): void {
    this.workers[i]!.postMessage(m);
  }

  private onWorkerMessage(i: number, m: FromMatchWorker): void {
    if (m.t === 'scripts') {
      const c = m.calls;
      for (let k = 0; k < c.length; k += 4) {
        const cid = c[k + 1]!;
        const p = this.pending.get(c[k]!);
        const pool = p?.gen.pools.get(c[k + 2]!);
        if (!p || !pool) this.answer(i, cid, false);
        else void pool.call(p.events[c[k + 3]!], p.encoded).then((value) => this.answer(i, cid, value));
      }
      return;
    }
    const p = this.pending.get(m.bid);
    if (m.t === 'done') {
      if (m.freeInput) (p?.inputBack ?? giveBuffer)(m.freeInput);
      if (m.freeSpare) giveBuffer(m.freeSpare);
    }
    if (!p) return;
    this.pending.delete(m.bid);
    if (m.t === 'done' && 'bytes' in m) this.outputSize.observe(m.bytes.byteLength, p.inputBytes);
    this.busy[i]!--;
    this.finish(p.gen);
    if (m.t === 'done') p.resolve(m);
    else p.reject(new Error(m.error));
  }

  /** Script answers to worker i, gathered per tick: the pools answer many calls per read. */
  private answer(i: number, cid: number, value: boolean): void {
    const a = this.answers[i]!;
    if (a.length === 0) {
      queueMicrotask(() => {
        this.answers[i] = [];
        if (this.workers[i]) this.post(i, { t: 'answers', values: a });
      });
    }
    a.push(cid, value ? 1 : 0);
  }

  private finish(g: Generation): void {
    g.inflight--;
    if (g.retired && g.inflight === 0) void this.dispose(g);
  }

  private async dispose(g: Generation): Promise<void> {
    for (let i = 0; i < this.workers.length; i++) this.post(i, { t: 'drop', gen: g.gen });
    await Promise.all([...new Set(g.pools.values())].map((p) => p.close()));
  }

  /** Per event, the indexes (into ruleSet.nodes of the generation used) of the nodes that fired. */
  async evaluate(events: unknown[]): Promise<{ gen: Generation; hits: number[][] }> {
    const r = await this.run(events, {});
    return { gen: r.gen, hits: (r as { hits: number[][] }).hits };
  }

  /** Worker threads evaluating the tree (0: the calling thread). */
  get workerCount(): number {
    return this.workers.length;
  }

  /**
   * Whether a batch given as JSON-lines bytes goes to a worker as they are
   * (workers, and no script rules: those run on this thread's pools and need
   * the events here). A reload may change the answer; run() copes either way.
   */
  takesBytes(): boolean {
    return this.workers.length > 0 && !this.current.tree.hasScripts;
  }

  /**
   * Evaluate one batch on the current generation: objects or JSON strings in,
   * fired nodes or finished output lines out.
   */
  run(events: unknown[], o: RunOptions): Promise<{ gen: Generation } & BatchResult> {
    if (this.closed) return Promise.reject(new Error('rule engine closed'));
    if (this.workerError) return Promise.reject(this.workerError);
    const g = this.current;
    let input = o.input;
    if (input !== undefined && (o.bytes !== true || !this.takesBytes())) {
      events = splitJsonLines(input);
      input = undefined;
    }
    const req: BatchRequest = { events, encoded: o.encoded === true || o.input !== undefined, lines: o.lines === true || o.bytes === true, bytes: o.bytes === true };
    g.inflight++;
    if (this.workers.length === 0) {
      const run = async () => {
        try {
          return await evaluateBatch(g.tree, g.out, req, (node, idx) => g.pools.get(node)!.call(events[idx], req.encoded));
        } finally {
          this.finish(g);
        }
      };
      return run().then((r) => ({ gen: g, ...r }));
    }
    // The least busy worker: batches are similar in cost, so this balances well enough.
    let wi = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i]! < this.busy[wi]!) wi = i;
    this.busy[wi]!++;
    const bid = this.nextBid++;
    return new Promise((resolve, reject) => {
      const inputBytes = req.bytes && input !== undefined ? input.byteLength : 0;
      // The batch's own buffer (not a copy) goes back to the batch when it returns.
      const t = input !== undefined ? transferable(input, o.inputOwner === true) : undefined;
      const inputBack = t !== undefined && t.buffer === input!.buffer ? o.inputBack : undefined;
      this.pending.set(bid, { gen: g, events, encoded: req.encoded, inputBytes, inputBack, resolve: (r) => resolve({ gen: g, ...r }), reject });
      const sizeHint = this.outputSize.expect(inputBytes);
      const spare = req.bytes ? takeBuffer(sizeHint) : undefined;
      const transfer: ArrayBuffer[] = spare ? [spare] : [];
      const m: ToMatchWorker = { t: 'eval', bid, gen: g.gen, ...req, spare, ...(sizeHint > 0 ? { sizeHint } : {}) };
      if (t !== undefined) {
        m.input = t.buffer;
        m.inputLength = t.length;
        transfer.push(t.buffer);
      }
      this.workers[wi]!.postMessage(m, transfer);
    });
  }

  /**
   * Load the rules directory again. A broken set is refused (the error is
   * returned and logged) and the running one stays; a good one takes over for
   * every batch dispatched from now on.
   */
  async reload(): Promise<{ ok: true; set: RuleSet } | { ok: false; error: Error }> {
    let g: Generation;
    try {
      g = await this.build();
    } catch (e) {
      this.opts.log.error(`rules reload refused, the previous rules keep running: ${(e as Error).message}`, {
        code: (e as { code?: string }).code ?? 'SKAFE_RULES_INVALID',
      });
      return { ok: false, error: e as Error };
    }
    if (this.closed) {
      await this.dispose(g);
      return { ok: false, error: new Error('rule engine closed') };
    }
    for (let i = 0; i < this.workers.length; i++) this.post(i, { t: 'load', gen: g.gen, set: g.set });
    const old = this.current;
    this.current = g;
    old.retired = true;
    if (old.inflight === 0) void this.dispose(old);
    this.opts.log.info('rules reloaded');
    this.logLoaded(g.set);
    return { ok: true, set: g.set };
  }

  /** Wait for batches in flight, then stop workers and interpreters. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.pending.size) await new Promise((r) => setTimeout(r, 5));
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.current.retired = true;
    await this.dispose(this.current);
  }
}
