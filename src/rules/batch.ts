import type { RuleTree } from './tree.js';
import { projectJson } from './projection.js';
import { LineBytesBuilder, planLines, planSplice, type LineBytes, type LinePlan, type OutputNode } from './output.js';
import type { ProjectedBatch } from './native-projection.js';

// One batch through the tree, as a match worker (or the stage's own thread,
// with workers = 0) does it. Input events are objects, or JSON text when the
// stage before serialized them (an encoded batch). The result is either the
// fired node indexes per event, or, when the stage after takes encoded
// batches, the output lines in pieces (LinePlan, see output.ts), so the
// pipeline's thread only joins strings.

export interface BatchRequest {
  events: unknown[];
  /** events are JSON strings. */
  encoded: boolean;
  /** Build the output lines (as a LinePlan) here rather than returning hits. */
  lines: boolean;
  /** With `lines`: as JSON-lines bytes (LineBytes) instead. */
  bytes?: boolean;
  /** With `bytes`: a buffer to write them into when it is big enough. */
  spare?: ArrayBuffer;
  /** With `bytes`: the output's expected size, so the buffer is made big enough once instead of grown. */
  sizeHint?: number;
  /** For encoded events: their projections where already made (native-projection.ts; undefined: not made). */
  projected?: Array<Record<string, unknown> | undefined>;
  /**
   * Encoded events the addon read from bytes (native-projection.ts): `events`
   * is then empty, the texts are decoded from here when needed, and output
   * lines are copied from the bytes where they can be.
   */
  source?: ProjectedBatch;
}

/**
 * `malformed`: events whose JSON text does not parse, skipped (no rule sees them) and
 * counted, not thrown: one bad line must not fail its whole batch. `malformedSample`: the
 * start of the first, for the report.
 */
export type BatchCounts = { matched: number; malformed?: number; malformedSample?: string };
export type BatchResult = ({ hits: number[][] } | LinePlan | LineBytes) & BatchCounts;

/** Runs a script rule on event `idx` of the batch. */
export type BatchScriptCall = (node: number, idx: number) => Promise<boolean>;

/** Event i's JSON text, for encoded events. */
function textOf(req: BatchRequest, i: number): string {
  return req.source ? req.source.text(i) : (req.events[i] as string);
}

function eventCount(req: BatchRequest): number {
  return req.source ? req.source.length : req.events.length;
}

/** An event whose JSON text does not parse. */
const MALFORMED = Symbol('malformed');

/** Parses event texts for one batch: counts those that do not parse, keeping the start of the first. */
class Malformed {
  n = 0;
  sample: string | undefined;
  /**
   * The parsed event, or MALFORMED. Also for a text whose projection was read: the addon
   * skips what the tree does not ask for without checking it, so such a line may still fail.
   */
  parse(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch {
      if (this.n++ === 0) this.sample = text.slice(0, 120);
      return MALFORMED;
    }
  }
  into<T extends BatchCounts>(r: T): T {
    if (this.n) {
      r.malformed = this.n;
      if (this.sample !== undefined) r.malformedSample = this.sample;
    }
    return r;
  }
}

/** What the tree and the output read of event i: for JSON text, only the parts the tree asks for. */
function forTree(tree: RuleTree, req: BatchRequest, i: number, bad: Malformed): unknown {
  if (!req.encoded) return req.events[i];
  const p = req.projected?.[i];
  if (p !== undefined) return p;
  const text = textOf(req, i);
  return projectJson(text, tree.projection) ?? bad.parse(text);
}

function isRecord(e: unknown): e is Record<string, unknown> {
  return e !== null && typeof e === 'object';
}

/** Lines for event i: cut from its own text when it came as text, else serialized with placeholders. */
function plan(e: Record<string, unknown>, i: number, hits: number[], nodes: readonly OutputNode[], req: BatchRequest, lp: LinePlan, bad: Malformed): void {
  if (req.encoded && planSplice(e, textOf(req, i), i, hits, lp)) return;
  // e may be a projection (forTree): the lines need the whole event
  const whole = req.encoded ? bad.parse(textOf(req, i)) : e;
  if (isRecord(whole)) planLines(whole, nodes, hits, lp);
}

function finish(events: unknown[], hits: number[][], nodes: readonly OutputNode[], req: BatchRequest, bad: Malformed): BatchResult {
  const lines = req.lines;
  let matched = 0;
  for (const h of hits) if (h.length) matched++;
  if (!lines) return bad.into({ hits, matched });
  if (req.bytes) {
    const b = new LineBytesBuilder(req.spare, req.sizeHint);
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (hits[i]!.length && isRecord(e)) b.add(e, req.encoded ? textOf(req, i) : undefined, nodes, hits[i]!);
    }
    return bad.into({ ...b.finish(), matched });
  }
  const lp: LinePlan = { texts: [], plan: [] };
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (hits[i]!.length && isRecord(e)) plan(e, i, hits[i]!, nodes, req, lp, bad);
  }
  return bad.into({ ...lp, matched });
}

/** Trees without script rules: all synchronous, one pass. */
export function evaluateBatchSync(tree: RuleTree, nodes: readonly OutputNode[], req: BatchRequest): BatchResult {
  const n = eventCount(req);
  const bad = new Malformed();
  if (!req.lines) {
    const hits: number[][] = new Array(n);
    let matched = 0;
    for (let i = 0; i < n; i++) {
      const e = forTree(tree, req, i, bad);
      const h = e === MALFORMED ? [] : tree.evaluateSync(e);
      hits[i] = h;
      if (h.length) matched++;
    }
    return bad.into({ hits, matched });
  }
  let matched = 0;
  if (req.bytes) {
    const b = new LineBytesBuilder(req.spare, req.sizeHint);
    const source = req.source;
    for (let i = 0; i < n; i++) {
      const e = forTree(tree, req, i, bad);
      if (e === MALFORMED) continue;
      const h = tree.evaluateSync(e);
      if (h.length === 0) continue;
      matched++;
      if (!isRecord(e)) continue;
      if (source === undefined) b.add(e, req.encoded ? textOf(req, i) : undefined, nodes, h);
      else if (source.spliceHow(i) >= 0) b.addSpliced(source, i, nodes, h);
      else {
        // e holds only what the keys read (the addon's projection has no `rule` or `event`): add must see them
        const text = textOf(req, i);
        const whole = bad.parse(text);
        if (isRecord(whole)) b.add(whole, text, nodes, h);
      }
    }
    return bad.into({ ...b.finish(), matched });
  }
  const lp: LinePlan = { texts: [], plan: [] };
  for (let i = 0; i < n; i++) {
    const e = forTree(tree, req, i, bad);
    if (e === MALFORMED) continue;
    const h = tree.evaluateSync(e);
    if (h.length === 0) continue;
    matched++;
    if (isRecord(e)) plan(e, i, h, nodes, req, lp, bad);
  }
  return bad.into({ ...lp, matched });
}

/** Trees with script rules: every event of the batch in flight at once, so the script pools stay busy. */
export async function evaluateBatch(tree: RuleTree, nodes: readonly OutputNode[], req: BatchRequest, script: BatchScriptCall): Promise<BatchResult> {
  if (!tree.hasScripts) return evaluateBatchSync(tree, nodes, req);
  // Encoded events are parsed only when a match node or the output needs them: scripts get the
  // text. One that does not parse reads as null: its match nodes find no keys, nothing fires.
  const bad = new Malformed();
  const events = req.encoded ? new Array<unknown>(req.events.length) : req.events;
  const get = req.encoded
    ? (idx: number) => {
        if (events[idx] === undefined) {
          const e = bad.parse(req.events[idx] as string);
          events[idx] = e === MALFORMED ? null : e;
        }
        return events[idx];
      }
    : (idx: number) => events[idx];
  const hits = await Promise.all(req.events.map((_e, idx) => tree.evaluateLazy(() => get(idx), (node) => script(node, idx))));
  if (req.encoded) for (let i = 0; i < hits.length; i++) if (hits[i]!.length) get(i);
  return finish(events, hits, nodes, req, bad);
}
