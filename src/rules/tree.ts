import type { RuleSet, RuleNode } from './load.js';
import { toRegExp } from './regex.js';
import { compileKeyPath, keyValues, type KeyPath } from './keypath.js';
import { projectionFor, type Projection } from './projection.js';

// The decision tree, compiled from a RuleSet: regexes built once, nodes
// immutable, so any number of evaluations share it. Evaluation is depth-first
// from base: a passing node fires its trigger, then its watchers run.

interface Matcher {
  kp: KeyPath;
  re: RegExp;
  /** Index of its key among the tree's distinct keys: each key is read once per event (KeyCache). */
  slot: number;
  /** Its column in the slot's ValueMemo. */
  col: number;
}

// Outcomes of the regexes on one key, by the value tested. Audit events repeat
// the same few executables, users, syscalls and keys all day, so most tests
// are ones already made: a lookup here replaces running up to every regex on
// that key. Bounded: at most MEMO_ROWS values of at most MEMO_MAX_LENGTH
// characters per key (then it starts over), and a key whose values rarely
// repeat (pids, arguments) turns the memo off for a while, where it would only
// cost.
const MEMO_ROWS = 512;
const MEMO_MAX_LENGTH = 128;
const MEMO_WINDOW = 4096;
const MEMO_OFF_FOR = 65536;

class ValueMemo {
  private readonly rows = new Map<string, number>();
  /** Row r, column c: 0 not tested yet, 1 no match, 2 match. */
  private readonly outcomes: Uint8Array;
  private lookups = 0;
  private misses = 0;
  private off = 0;

  constructor(private readonly width: number) {
    this.outcomes = new Uint8Array(MEMO_ROWS * width);
  }

  private clear(): void {
    this.rows.clear();
    this.outcomes.fill(0);
  }

  /**
   * The row of each value (-1: not remembered, too long), looked up once per
   * event and key; null when the memo is off for now.
   */
  rowsOf(vs: readonly string[]): number[] | null {
    if (this.off > 0) {
      this.off = Math.max(0, this.off - vs.length);
      return null;
    }
    if (vs.length > MEMO_ROWS / 4) return null;
    // full: start over before, not part way through (earlier rows would point at nothing)
    if (this.rows.size + vs.length > MEMO_ROWS) this.clear();
    const rows = new Array<number>(vs.length);
    for (let i = 0; i < vs.length; i++) {
      const v = vs[i]!;
      if (v.length > MEMO_MAX_LENGTH) {
        rows[i] = -1;
        continue;
      }
      this.lookups++;
      let row = this.rows.get(v);
      if (row === undefined) {
        this.misses++;
        row = this.rows.size;
        this.rows.set(v, row);
      }
      rows[i] = row;
    }
    if (this.lookups >= MEMO_WINDOW) {
      // mostly new values: not worth keeping
      const off = this.misses > this.lookups / 2;
      this.lookups = this.misses = 0;
      if (off) {
        this.off = MEMO_OFF_FOR;
        this.clear();
        return null;
      }
    }
    return rows;
  }

  /** Whether m's regex matches v, whose row is `row` (-1: not remembered). */
  test(m: Matcher, v: string, row: number): boolean {
    if (row < 0) return m.re.test(v);
    const at = row * this.width + m.col;
    const known = this.outcomes[at]!;
    if (known !== 0) return known === 2;
    const hit = m.re.test(v);
    this.outcomes[at] = hit ? 2 : 1;
    return hit;
  }
}

/**
 * What each distinct key of the tree yields for one event, read when a node
 * first asks: a hundred rules over a dozen keys would otherwise walk the event
 * for the same key again at every node. With each value its memo row.
 */
interface KeyRead {
  values: string[];
  /** null: the key's memo is off. */
  rows: number[] | null;
}
type KeyCache = Array<KeyRead | undefined>;

interface CompiledNode {
  spec: RuleNode;
  matchers: Matcher[];
}

/** Runs a script rule's check on an event: true = pass. Errors/timeouts resolve false (counted elsewhere). */
export type ScriptCall = (node: number, event: unknown) => Promise<boolean>;

export interface NodeTrace {
  node: number;
  depth: number;
  /** False when an ancestor failed, so the node never ran. */
  reached: boolean;
  pass: boolean;
  /** For a failed match node: the first match that failed and what the event had there. */
  failed?: { key: string; pattern: string; values: string[] };
}

export class RuleTree {
  readonly nodes: CompiledNode[];
  readonly roots: number[];
  readonly hasScripts: boolean;
  /**
   * What the match nodes read of an event, for events given as JSON text (see
   * projection.ts); `rule` and `event` kept whole, the output needs them.
   */
  readonly projection: Projection;
  /**
   * Only what the match nodes read: for the addon's projection, whose lines
   * get their output copied from the bytes (LineBytesBuilder.addSpliced) or,
   * where they cannot, built from the whole text parsed again.
   */
  readonly keyProjection: Projection;

  /** Distinct keys (KeyCache slots). */
  private readonly keys: number;
  private readonly memos: ValueMemo[];

  constructor(readonly set: RuleSet) {
    // A slot per distinct list of paths: `bin`, `exe` and `process.executable` read the same values.
    const slots = new Map<string, number>();
    const widths: number[] = [];
    this.nodes = set.nodes.map((spec) => ({
      spec,
      matchers: spec.matches.map((m) => {
        const id = m.paths.join('\0');
        let slot = slots.get(id);
        if (slot === undefined) {
          slots.set(id, (slot = slots.size));
          widths.push(0);
        }
        return { kp: compileKeyPath(m.key, m.paths), re: toRegExp(m.pattern), slot, col: widths[slot]!++ };
      }),
    }));
    this.keys = slots.size;
    this.memos = widths.map((w) => new ValueMemo(w));
    this.roots = set.roots;
    this.hasScripts = set.nodes.some((n) => n.action === 'script');
    const keys = this.nodes.flatMap((n) => n.matchers.map((m) => m.kp));
    this.projection = projectionFor(keys, ['rule', 'event']);
    this.keyProjection = projectionFor(keys);
  }

  /** The node's first match that fails for `event`, or null when all pass. */
  private matchNode(n: CompiledNode, event: unknown, cache: KeyCache): Matcher | null {
    for (const m of n.matchers) {
      const memo = this.memos[m.slot]!;
      let read = cache[m.slot];
      if (read === undefined) {
        const values = keyValues(event, m.kp);
        read = cache[m.slot] = { values, rows: memo.rowsOf(values) };
      }
      const vs = read.values;
      const rows = read.rows;
      let ok = false;
      for (let i = 0; i < vs.length; i++) {
        if (rows === null ? m.re.test(vs[i]!) : memo.test(m, vs[i]!, rows[i]!)) {
          ok = true;
          break;
        }
      }
      if (!ok) return m;
    }
    return null;
  }

  /**
   * The nodes whose trigger fires for `event`, in firing order. Only for trees
   * without script rules (the fast path the worker threads take).
   */
  evaluateSync(event: unknown): number[] {
    const hits: number[] = [];
    const cache: KeyCache = new Array(this.keys);
    for (const r of this.roots) this.visitSync(r, event, cache, hits);
    return hits;
  }

  private visitSync(i: number, event: unknown, cache: KeyCache, hits: number[]): void {
    const n = this.nodes[i]!;
    if (this.matchNode(n, event, cache)) return;
    if (n.spec.trigger) hits.push(i);
    for (const w of n.spec.watchers) this.visitSync(w, event, cache, hits);
  }

  /** As evaluateSync, awaiting script rules through `script`. */
  evaluate(event: unknown, script: ScriptCall): Promise<number[]> {
    return this.evaluateLazy(() => event, (i) => script(i, event));
  }

  /**
   * As evaluate, with the event fetched only when a match node needs it: a
   * tree of script rules passes JSON text to its scripts without ever parsing
   * it here. `script` gets undefined as the event when none was fetched.
   */
  async evaluateLazy(get: () => unknown, script: ScriptCall): Promise<number[]> {
    if (!this.hasScripts) return this.evaluateSync(get());
    const hits: number[] = [];
    const cache: KeyCache = new Array(this.keys);
    let event: unknown;
    let have = false;
    const ev = () => {
      if (!have) {
        event = get();
        have = true;
      }
      return event;
    };
    const visit = async (i: number): Promise<void> => {
      const n = this.nodes[i]!;
      if (n.spec.action === 'script') {
        if (!(await script(i, have ? event : undefined))) return;
      } else if (this.matchNode(n, ev(), cache)) return;
      if (n.spec.trigger) hits.push(i);
      for (const w of n.spec.watchers) await visit(w);
    };
    for (const r of this.roots) await visit(r);
    return hits;
  }

  /** Every node's outcome for one event, in tree order, including those never reached. */
  async explain(event: unknown, script: ScriptCall): Promise<NodeTrace[]> {
    const trace: NodeTrace[] = [];
    const cache: KeyCache = new Array(this.keys);
    const visit = async (i: number, depth: number, reached: boolean): Promise<void> => {
      const n = this.nodes[i]!;
      let pass = false;
      let failed: NodeTrace['failed'];
      if (reached) {
        if (n.spec.action === 'script') pass = await script(i, event);
        else {
          const m = this.matchNode(n, event, cache);
          pass = m === null;
          if (m) failed = { key: m.kp.key, pattern: m.re.source, values: cache[m.slot]!.values };
        }
      }
      const t: NodeTrace = { node: i, depth, reached, pass };
      if (failed) t.failed = failed;
      trace.push(t);
      for (const w of n.spec.watchers) await visit(w, depth + 1, reached && pass);
    };
    for (const r of this.roots) await visit(r, 0, true);
    return trace;
  }
}
