import { parentPort } from 'node:worker_threads';
import { RuleTree } from './tree.js';
import { outputNodes, type OutputNode } from './output.js';
import { evaluateBatch, evaluateBatchSync, type BatchResult } from './batch.js';
import type { RuleSet } from './load.js';
import { splitJsonLines } from '../stage.js';
import { NativeProjector, type ProjectedBatch } from './native-projection.js';

// A rule-engine worker thread: holds the compiled tree of each live rule-set
// generation and evaluates batches of events. Events arrive as objects or, when
// the stage before serialized them, as JSON strings (far cheaper to pass
// between threads than objects); results go back as fired node indexes or as
// finished output lines (see batch.ts). Script rules are run by the main
// thread's script pools; this thread asks for them by event index.

export type ToMatchWorker =
  | { t: 'load'; gen: number; set: RuleSet }
  | { t: 'drop'; gen: number }
  /**
   * `input`: the events as JSON-lines bytes, the first `inputLength` bytes of
   * a transferred buffer (`events` then empty); `spare`: a buffer for the
   * output bytes (src/buffer-pool.ts).
   */
  | { t: 'eval'; bid: number; gen: number; events: unknown[]; encoded: boolean; lines: boolean; bytes?: boolean; input?: ArrayBuffer; inputLength?: number; spare?: ArrayBuffer; projected?: Array<Record<string, unknown> | undefined>; source?: ProjectedBatch }
  /** Script answers: cid, 0|1, cid, 0|1, … */
  | { t: 'answers'; values: number[] };

export type FromMatchWorker =
  /** `freeInput`, `freeSpare`: the request's buffers this thread is done with, back for reuse. */
  | ({ t: 'done'; bid: number; freeInput?: ArrayBuffer; freeSpare?: ArrayBuffer } & BatchResult)
  | { t: 'failed'; bid: number; error: string }
  /** Script calls to run: bid, cid, node, idx, bid, cid, … (batched per tick: a batch asks for hundreds at once). */
  | { t: 'scripts'; calls: number[] };

const port = parentPort!;
const trees = new Map<number, { tree: RuleTree; nodes: OutputNode[]; projector: NativeProjector | undefined }>();
const scriptCalls = new Map<number, (v: boolean) => void>();
let nextCid = 1;
let outgoing: number[] = [];

function askScript(bid: number, node: number, idx: number): Promise<boolean> {
  const cid = nextCid++;
  if (outgoing.length === 0) {
    queueMicrotask(() => {
      const calls = outgoing;
      outgoing = [];
      port.postMessage({ t: 'scripts', calls } satisfies FromMatchWorker);
    });
  }
  outgoing.push(bid, cid, node, idx);
  return new Promise<boolean>((resolve) => scriptCalls.set(cid, resolve));
}

/** Output bytes are transferred, not copied; so are the request's buffers this thread is done with. */
function done(bid: number, r: BatchResult, m?: { input?: ArrayBuffer; spare?: ArrayBuffer }): void {
  const out = 'bytes' in r ? (r.bytes.buffer as ArrayBuffer) : undefined;
  const back = (b: ArrayBuffer | undefined) => (b !== undefined && b.byteLength > 0 && b !== out ? b : undefined);
  const freeInput = back(m?.input);
  const freeSpare = back(m?.spare);
  const transfer = [out, freeInput, freeSpare].filter((b) => b !== undefined);
  port.postMessage({ t: 'done', bid, ...r, ...(freeInput ? { freeInput } : {}), ...(freeSpare ? { freeSpare } : {}) } satisfies FromMatchWorker, transfer);
}

function failed(bid: number, e: unknown): void {
  port.postMessage({ t: 'failed', bid, error: e instanceof Error ? e.message : String(e) } satisfies FromMatchWorker);
}

port.on('message', (m: ToMatchWorker) => {
  switch (m.t) {
    case 'load':
      {
        const tree = new RuleTree(m.set);
        const nodes = outputNodes(m.set.nodes);
        const projector = tree.hasScripts ? undefined : NativeProjector.create(tree.keyProjection);
        projector?.setTails(nodes);
        trees.set(m.gen, { tree, nodes, projector });
      }
      return;
    case 'drop':
      trees.get(m.gen)?.projector?.dispose();
      trees.delete(m.gen);
      return;
    case 'answers': {
      const v = m.values;
      for (let i = 0; i < v.length; i += 2) {
        const r = scriptCalls.get(v[i]!);
        scriptCalls.delete(v[i]!);
        r?.(v[i + 1] === 1);
      }
      return;
    }
    case 'eval': {
      const g = trees.get(m.gen);
      if (m.input !== undefined) {
        // natively projected where the addon is built: the tree then reads no JSON text itself
        if (g?.projector) {
          const p = g.projector.project(new Uint8Array(m.input), m.inputLength ?? m.input.byteLength);
          m.events = [];
          m.source = p;
          m.projected = p.projected;
        } else m.events = splitJsonLines(new Uint8Array(m.input, 0, m.inputLength));
      }
      if (!g) return failed(m.bid, `no rule set generation ${m.gen}`);
      if (!g.tree.hasScripts) {
        let r: BatchResult;
        try {
          r = evaluateBatchSync(g.tree, g.nodes, m);
        } catch (e) {
          return failed(m.bid, e);
        }
        done(m.bid, r, m);
        return;
      }
      evaluateBatch(g.tree, g.nodes, m, (node, idx) => askScript(m.bid, node, idx)).then(
        (r) => done(m.bid, r, m),
        (e) => failed(m.bid, e),
      );
    }
  }
});
