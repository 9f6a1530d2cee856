import { parentPort } from 'node:worker_threads';
import { RuleTree } from './tree.js';
import { outputNodes, type OutputNode } from './output.js';
import { evaluateBatch, evaluateBatchSync, type BatchResult } from './batch.js';
import type { RuleSet } from './load.js';

// A rule-engine worker thread: holds the compiled tree of each live rule-set
// generation and evaluates batches of events. Events arrive as objects or, when
// the stage before serialized them, as JSON strings (far cheaper to pass
// between threads than objects); results go back as fired node indexes or as
// finished output lines (see batch.ts). Script rules are run by the main
// thread's script pools; this thread asks for them by event index.

export type ToMatchWorker =
  | { t: 'load'; gen: number; set: RuleSet }
  | { t: 'drop'; gen: number }
  | { t: 'eval'; bid: number; gen: number; events: unknown[]; encoded: boolean; lines: boolean }
  | { t: 'script'; cid: number; value: boolean };

export type FromMatchWorker =
  | ({ t: 'done'; bid: number } & BatchResult)
  | { t: 'failed'; bid: number; error: string }
  | { t: 'script'; bid: number; cid: number; node: number; idx: number };

const port = parentPort!;
const trees = new Map<number, { tree: RuleTree; nodes: OutputNode[] }>();
const scriptCalls = new Map<number, (v: boolean) => void>();
let nextCid = 1;

function failed(bid: number, e: unknown): void {
  port.postMessage({ t: 'failed', bid, error: e instanceof Error ? e.message : String(e) } satisfies FromMatchWorker);
}

port.on('message', (m: ToMatchWorker) => {
  switch (m.t) {
    case 'load':
      trees.set(m.gen, { tree: new RuleTree(m.set), nodes: outputNodes(m.set.nodes) });
      return;
    case 'drop':
      trees.delete(m.gen);
      return;
    case 'script': {
      const r = scriptCalls.get(m.cid);
      scriptCalls.delete(m.cid);
      r?.(m.value);
      return;
    }
    case 'eval': {
      const g = trees.get(m.gen);
      if (!g) return failed(m.bid, `no rule set generation ${m.gen}`);
      if (!g.tree.hasScripts) {
        let r: BatchResult;
        try {
          r = evaluateBatchSync(g.tree, g.nodes, m);
        } catch (e) {
          return failed(m.bid, e);
        }
        port.postMessage({ t: 'done', bid: m.bid, ...r } satisfies FromMatchWorker);
        return;
      }
      evaluateBatch(g.tree, g.nodes, m, (node, idx) => {
        const cid = nextCid++;
        port.postMessage({ t: 'script', bid: m.bid, cid, node, idx } satisfies FromMatchWorker);
        return new Promise<boolean>((resolve) => scriptCalls.set(cid, resolve));
      }).then(
        (r) => port.postMessage({ t: 'done', bid: m.bid, ...r } satisfies FromMatchWorker),
        (e) => failed(m.bid, e),
      );
    }
  }
});
