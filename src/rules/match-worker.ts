import { parentPort } from 'node:worker_threads';
import { RuleTree } from './tree.js';
import type { RuleSet } from './load.js';

// A rule-engine worker thread: holds the compiled tree of each live rule-set
// generation and evaluates batches of events. Script rules are run by the
// main thread's script pools; this thread asks for them by event index.

export type ToMatchWorker =
  | { t: 'load'; gen: number; set: RuleSet }
  | { t: 'drop'; gen: number }
  | { t: 'eval'; bid: number; gen: number; events: unknown[] }
  | { t: 'script'; cid: number; value: boolean };

export type FromMatchWorker =
  | { t: 'done'; bid: number; hits: number[][] }
  | { t: 'failed'; bid: number; error: string }
  | { t: 'script'; bid: number; cid: number; node: number; idx: number };

const port = parentPort!;
const trees = new Map<number, RuleTree>();
const scriptCalls = new Map<number, (v: boolean) => void>();
let nextCid = 1;

port.on('message', (m: ToMatchWorker) => {
  switch (m.t) {
    case 'load':
      trees.set(m.gen, new RuleTree(m.set));
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
      const tree = trees.get(m.gen);
      if (!tree) {
        port.postMessage({ t: 'failed', bid: m.bid, error: `no rule set generation ${m.gen}` } satisfies FromMatchWorker);
        return;
      }
      if (!tree.hasScripts) {
        const hits = m.events.map((e) => tree.evaluateSync(e));
        port.postMessage({ t: 'done', bid: m.bid, hits } satisfies FromMatchWorker);
        return;
      }
      // With script rules, every event of the batch is in flight at once so the script pools stay busy.
      Promise.all(
        m.events.map((e, idx) =>
          tree.evaluate(e, (node) => {
            const cid = nextCid++;
            port.postMessage({ t: 'script', bid: m.bid, cid, node, idx } satisfies FromMatchWorker);
            return new Promise<boolean>((resolve) => scriptCalls.set(cid, resolve));
          }),
        ),
      ).then(
        (hits) => port.postMessage({ t: 'done', bid: m.bid, hits } satisfies FromMatchWorker),
        (e) => port.postMessage({ t: 'failed', bid: m.bid, error: String(e) } satisfies FromMatchWorker),
      );
    }
  }
});
