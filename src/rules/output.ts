import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RuleNode } from './load.js';
import { MAX_BATCH } from '../stage.js';
import { roomFor } from '../buffer-pool.js';
import type { ProjectedBatch } from './native-projection.js';

// What the rules stage emits: one item per (event, fired rule, log), the event
// plus ECS `rule.name` (section name as written), `rule.ruleset` (the .rules
// file name) and `event.kind` (`event` for the event log, `alert` for the
// alert log). Two forms with the same content: objects (hitItems, for stages
// that read fields) and JSON lines (hitLines, for sinks that take encoded
// batches), the latter built in the match workers.

/** The fields of a rule node the output needs: small, so a worker can hold them per generation. */
export interface OutputNode {
  name: string;
  ruleset: string;
  trigger: RuleNode['trigger'];
  /** JSON of `{name, ruleset}`: the `rule` object when the event has none of its own. */
  ruleJson: string;
  /** `,"rule":{…}}`: how a line ends when `rule` is added last. */
  ruleTail: string;
  /** ruleTail and the newline as UTF-8. */
  ruleTailBytes: Uint8Array;
}

export function outputNodes(nodes: readonly RuleNode[]): OutputNode[] {
  return nodes.map((n) => {
    const ruleset = path.basename(n.file);
    const ruleJson = JSON.stringify({ name: n.name, ruleset });
    const ruleTail = `,"rule":${ruleJson}}`;
    return { name: n.name, ruleset, trigger: n.trigger, ruleJson, ruleTail, ruleTailBytes: utf8.encode(ruleTail + '\n') };
  });
}

export function hitItems(event: Record<string, unknown>, nodes: readonly OutputNode[], hits: number[], out: unknown[]): void {
  for (const h of hits) {
    const n = nodes[h]!;
    const rule = { ...(event.rule as object | undefined), name: n.name, ruleset: n.ruleset };
    const ev = event.event as Record<string, unknown> | undefined;
    if (n.trigger === 'log' || n.trigger === 'both') out.push({ ...event, rule, event: { ...ev, kind: 'event' } });
    if (n.trigger === 'alert' || n.trigger === 'both') out.push({ ...event, rule, event: { ...ev, kind: 'alert' } });
  }
}

// Placeholders serialized once per event in place of `rule` and `event.kind`,
// then replaced per hit by text splicing, so an event with seven hits is
// serialized once, not seven times. A placeholder holds a random nonce made at
// start-up, so event content cannot contain one (nothing outside this process
// knows it, and no output line carries it); if one is not found at all, each
// item is serialized in full.
const nonce = randomBytes(12).toString('hex');
const RULE_MARK = `\u0000skafe-rule-${nonce}\u0000`;
const KIND_MARK = `\u0000skafe-kind-${nonce}\u0000`;
const RULE_TOKEN = JSON.stringify(RULE_MARK);
const KIND_TOKEN = JSON.stringify(KIND_MARK);
const KIND_TEXT = ['"event"', '"alert"'] as const;

/**
 * Output lines in pieces, as a match worker hands them to the stage: per
 * event the serialized event cut around the two placeholders (three texts)
 * and the fired nodes, or, rarely, the finished lines. The stage's thread
 * then joins the pieces (assembleLines), which in V8 makes cons strings
 * without copying: an event with seven lines crosses threads once, not seven
 * times, and the copying is left to the sink's single write.
 */
export interface LinePlan {
  texts: string[];
  /**
   * Per event: [SPLICE_RULE_FIRST | SPLICE_KIND_FIRST, nHits, ...hits] with
   * texts [a, b, c], or [WHOLE, nLines] with that many finished lines in texts.
   */
  plan: number[];
}
const SPLICE_RULE_FIRST = 0;
const SPLICE_KIND_FIRST = 1;
const WHOLE = 2;
const SPLICE_SOURCE = 3;

/** Appends to `lp` the lines hitItems would build, as pieces. */
export function planLines(event: Record<string, unknown>, nodes: readonly OutputNode[], hits: number[], lp: LinePlan): void {
  if (hits.length === 0) return;
  const own = event.rule;
  const template = JSON.stringify({ ...event, rule: RULE_MARK, event: { ...(event.event as object | undefined), kind: KIND_MARK } });
  // `rule` is usually added last and `event.kind` early: search each from its likely end.
  const r = own === undefined || own === null ? template.lastIndexOf(RULE_TOKEN) : -1;
  const k = template.indexOf(KIND_TOKEN);
  if (r < 0 || k < 0) {
    const lines: string[] = [];
    hitLines(event, nodes, hits, lines);
    lp.plan.push(WHOLE, lines.length);
    for (const l of lines) lp.texts.push(l);
    return;
  }
  const ruleFirst = r < k;
  const [p1, l1, p2, l2] = ruleFirst ? [r, RULE_TOKEN.length, k, KIND_TOKEN.length] : [k, KIND_TOKEN.length, r, RULE_TOKEN.length];
  lp.texts.push(template.slice(0, p1), template.slice(p1 + l1, p2), template.slice(p2 + l2));
  lp.plan.push(ruleFirst ? SPLICE_RULE_FIRST : SPLICE_KIND_FIRST, hits.length);
  for (const h of hits) lp.plan.push(h);
}

// An event that came in as JSON text need not be serialized again: its text
// is cut where the output differs (event.kind, and the end, where `rule` goes)
// and the stage's thread, which still holds the text, joins the cuts. The
// worker sends back only the cut positions. The text is taken as
// JSON.stringify wrote it (the encoded-batch contract; coalesce's workers do),
// so the result is what JSON.stringify of the item gives; anything that does
// not look like it takes the path above.
const KIND_INSERT = [',"kind":"event"', ',"kind":"alert"'] as const;
const KIND_FIRST = ['"kind":"event"', '"kind":"alert"'] as const;
/** How event.kind is put in: replace the value at [start, end), insert after other keys, insert into `{}`. */
const KIND_REPLACE = 0;
const KIND_APPEND = 1;
const KIND_ONLY = 2;

const QUOTE = 34;
const BACKSLASH = 92;

/** Index just past the string starting at s[i] (a quote), or -1. */
function skipString(s: string, i: number): number {
  for (let j = s.indexOf('"', i + 1); j >= 0; j = s.indexOf('"', j + 1)) {
    let k = j - 1;
    while (s.charCodeAt(k) === BACKSLASH) k--;
    if ((j - k) % 2 === 1) return j + 1; // an even number of backslashes before it: the closing quote
  }
  return -1;
}

/** Index just past the JSON value starting at s[i], or -1 (no whitespace expected). */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === QUOTE) return skipString(s, i);
  if (c === 123 || c === 91) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d === QUOTE) {
        j = skipString(s, j) - 1;
        if (j < 0) return -1;
      } else if (d === 123 || d === 91) depth++;
      else if (d === 125 || d === 93) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < s.length) {
    const d = s.charCodeAt(j);
    if (d === 44 || d === 125 || d === 93) break;
    j++;
  }
  return j > i ? j : -1;
}

/**
 * Where the text of an event (JSON.stringify output, top-level `event` an
 * object) takes event.kind: [start, end, how], or null when the text is not
 * laid out as expected.
 */
export function kindSplice(s: string): [number, number, number] | null {
  if (s.charCodeAt(0) !== 123 || s.charCodeAt(s.length - 1) !== 125) return null;
  let i = 1;
  for (;;) {
    if (s.charCodeAt(i) !== QUOTE) return null;
    const kEnd = skipString(s, i);
    if (kEnd < 0 || s.charCodeAt(kEnd) !== 58) return null;
    if (kEnd - i === 7 && s.startsWith('"event"', i)) return s.charCodeAt(kEnd + 1) === 123 ? kindInObject(s, kEnd + 1) : null;
    const vEnd = skipValue(s, kEnd + 1);
    if (vEnd < 0 || s.charCodeAt(vEnd) !== 44) return null;
    i = vEnd + 1;
  }
}

function kindInObject(s: string, o: number): [number, number, number] | null {
  let i = o + 1;
  if (s.charCodeAt(i) === 125) return [i, i, KIND_ONLY];
  for (;;) {
    if (s.charCodeAt(i) !== QUOTE) return null;
    const kEnd = skipString(s, i);
    if (kEnd < 0 || s.charCodeAt(kEnd) !== 58) return null;
    const vEnd = skipValue(s, kEnd + 1);
    if (vEnd < 0) return null;
    if (kEnd - i === 6 && s.startsWith('"kind"', i)) return [kEnd + 1, vEnd, KIND_REPLACE];
    const c = s.charCodeAt(vEnd);
    if (c === 125) return [vEnd, vEnd, KIND_APPEND];
    if (c !== 44) return null;
    i = vEnd + 1;
  }
}

/**
 * As planLines for an event given as JSON text `text` (item `idx` of the
 * batch): true when the cut positions were planned, false when the caller
 * must use planLines.
 */
export function planSplice(event: Record<string, unknown>, text: string, idx: number, hits: number[], lp: LinePlan): boolean {
  if (hits.length === 0) return true;
  const ev = event.event;
  if (event.rule !== undefined || ev === null || typeof ev !== 'object' || Array.isArray(ev)) return false;
  const k = kindSplice(text);
  if (!k) return false;
  lp.plan.push(SPLICE_SOURCE, hits.length, idx, k[0], k[1], k[2]);
  for (const h of hits) lp.plan.push(h);
  return true;
}

/** The lines of a LinePlan, in order; `source`: the batch's texts, when the plan cuts them. */
export function assembleLines(lp: LinePlan, nodes: readonly OutputNode[], out: string[], source?: readonly unknown[]): void {
  const { texts, plan } = lp;
  let t = 0;
  for (let i = 0; i < plan.length; ) {
    const code = plan[i++]!;
    const n = plan[i++]!;
    if (code === SPLICE_SOURCE) {
      const s = source![plan[i++]!] as string;
      const start = plan[i++]!;
      const end = plan[i++]!;
      const how = plan[i++]!;
      const head = s.slice(0, start);
      const mid = s.slice(end, s.length - 1);
      const kinds = how === KIND_REPLACE ? KIND_TEXT : how === KIND_APPEND ? KIND_INSERT : KIND_FIRST;
      for (let j = 0; j < n; j++) {
        const node = nodes[plan[i++]!]!;
        const trig = node.trigger;
        if (trig === 'log' || trig === 'both') out.push(head + kinds[0] + mid + node.ruleTail);
        if (trig === 'alert' || trig === 'both') out.push(head + kinds[1] + mid + node.ruleTail);
      }
      continue;
    }
    if (code === WHOLE) {
      for (let j = 0; j < n; j++) out.push(texts[t++]!);
      continue;
    }
    const a = texts[t++]!;
    const b = texts[t++]!;
    const c = texts[t++]!;
    for (let j = 0; j < n; j++) {
      const node = nodes[plan[i++]!]!;
      const rule = node.ruleJson;
      const trig = node.trigger;
      for (let kind = 0; kind < 2; kind++) {
        if (kind === 0 ? trig !== 'log' && trig !== 'both' : trig !== 'alert' && trig !== 'both') continue;
        out.push(code === SPLICE_RULE_FIRST ? a + rule + b + KIND_TEXT[kind] + c : a + KIND_TEXT[kind] + b + rule + c);
      }
    }
  }
}

// For sinks that only write bytes (ENCODED_BYTES, src/stage.ts): the workers
// make the JSON-lines bytes of a whole output batch and transfer them, so the
// stage's thread neither joins nor encodes the lines (the sink writes them as
// they are). An event cut from its text is encoded once (two pieces) and its
// lines are copied together from those bytes.
const utf8 = new TextEncoder();
const KIND_BYTES = [KIND_TEXT, KIND_INSERT, KIND_FIRST].map((ks) => ks.map((k) => utf8.encode(k)));
/** addSpliced's plan, kept from batch to batch; a builder holds it until it finishes, so two never share it. */
let spliceScratch: Int32Array | undefined;
function takeScratch(): Int32Array {
  const s = spliceScratch ?? new Int32Array(4096);
  spliceScratch = undefined;
  return s;
}

/** JSON-lines bytes of the output, with where each MAX_BATCH lines end. */
export interface LineBytes {
  bytes: Uint8Array;
  /** Byte offset after every MAX_BATCH-th line: the stage cuts its batches there. */
  cuts: number[];
  count: number;
}

export class LineBytesBuilder {
  // Written straight into one buffer (a spare from the stage's thread when it
  // came with one): no per-event Uint8Arrays, whose backing stores the
  // collector would have to track and free. An event's later lines copy its
  // first line's bytes within the buffer.
  private buf: Buffer;
  private size = 0;
  private count = 0;
  private readonly cuts: number[] = [];

  constructor(spare?: ArrayBuffer, sizeHint = 0) {
    // Growing means a fresh buffer and a copy of everything so far: better one of the right size at once.
    this.buf = Buffer.from(spare !== undefined && spare.byteLength > 0 && spare.byteLength >= sizeHint ? spare : roomFor(Math.max(sizeHint, 256 * 1024)));
  }

  /** Room for n more bytes. */
  private reserve(n: number): void {
    if (this.size + n <= this.buf.length) return;
    const grown = Buffer.from(roomFor(Math.max(this.buf.length * 2, this.size + n)));
    this.buf.copy(grown, 0, 0, this.size);
    this.buf = grown;
  }

  private endLine(): void {
    if (++this.count % MAX_BATCH === 0) this.cuts.push(this.size);
  }

  // Lines the addon copies from the input bytes (addSpliced), queued as a
  // plan of [line, hits, node…] and written in one call when something else
  // is to be written or the batch ends. Their sizes are known here, so room,
  // line count and cuts are settled as they are queued.
  private spliced: ProjectedBatch | undefined;
  private plan = takeScratch();
  private planLength = 0;
  private splicedFrom = 0;

  /** As add, for line i of a batch the addon read (its spliceHow ≥ 0): the lines are copied from its bytes. */
  addSpliced(source: ProjectedBatch, i: number, nodes: readonly OutputNode[], hits: number[]): void {
    if (hits.length === 0) return;
    if (this.spliced !== source) {
      this.flush();
      this.spliced = source;
      this.splicedFrom = this.size;
    }
    const kinds = KIND_BYTES[source.spliceHow(i)]!;
    const [head, mid] = source.spliceLengths(i);
    const logLine = head + mid + kinds[0]!.length;
    const alertLine = head + mid + kinds[1]!.length;
    let bytes = 0;
    for (const h of hits) {
      const n = nodes[h]!;
      if (n.trigger === 'log' || n.trigger === 'both') bytes += logLine + n.ruleTailBytes.length;
      if (n.trigger === 'alert' || n.trigger === 'both') bytes += alertLine + n.ruleTailBytes.length;
    }
    // growing copies the queued, not yet written part too: harmless, it is written after
    this.reserve(bytes);
    if (this.plan.length < this.planLength + 2 + hits.length) {
      const grown = new Int32Array(Math.max(2 * this.plan.length, this.planLength + 2 + hits.length));
      grown.set(this.plan.subarray(0, this.planLength));
      this.plan = grown;
    }
    const plan = this.plan;
    plan[this.planLength++] = i;
    plan[this.planLength++] = hits.length;
    for (const h of hits) {
      plan[this.planLength++] = h;
      const n = nodes[h]!;
      if (n.trigger === 'log' || n.trigger === 'both') {
        this.size += logLine + n.ruleTailBytes.length;
        this.endLine();
      }
      if (n.trigger === 'alert' || n.trigger === 'both') {
        this.size += alertLine + n.ruleTailBytes.length;
        this.endLine();
      }
    }
  }

  /** Writes the queued spliced lines. */
  private flush(): void {
    if (this.spliced === undefined || this.planLength === 0) return;
    const end = this.spliced.splice(this.plan, this.planLength, this.buf, this.splicedFrom);
    if (end !== this.size) throw new Error(`spliced lines: ${end - this.splicedFrom} bytes written, ${this.size - this.splicedFrom} expected`);
    this.planLength = 0;
    this.spliced = undefined;
  }

  /** The lines of `event` (given as JSON text `text` when it came so) for `hits`, as hitLines. */
  add(event: Record<string, unknown>, text: string | undefined, nodes: readonly OutputNode[], hits: number[]): void {
    if (hits.length === 0) return;
    this.flush();
    const ev = event.event;
    const k = text !== undefined && event.rule === undefined && ev !== null && typeof ev === 'object' && !Array.isArray(ev) ? kindSplice(text) : null;
    if (k) {
      // Cuts fall on ASCII punctuation, never inside a surrogate pair, so encoding the pieces apart is exact.
      const kinds = KIND_BYTES[k[2]]!;
      let headStart = -1;
      let headEnd = 0;
      let midStart = 0;
      let midEnd = 0;
      for (const h of hits) {
        const n = nodes[h]!;
        for (let kind = 0; kind < 2; kind++) {
          if (kind === 0 ? n.trigger !== 'log' && n.trigger !== 'both' : n.trigger !== 'alert' && n.trigger !== 'both') continue;
          const kb = kinds[kind]!;
          const tail = n.ruleTailBytes;
          if (headStart < 0) {
            // UTF-8 takes at most 3 bytes per UTF-16 unit
            this.reserve(3 * text!.length + kb.length + tail.length);
            headStart = this.size;
            this.size += this.buf.write(text!.slice(0, k[0]), this.size);
            headEnd = this.size;
            this.buf.set(kb, this.size);
            this.size += kb.length;
            midStart = this.size;
            this.size += this.buf.write(text!.slice(k[1], text!.length - 1), this.size);
            midEnd = this.size;
          } else {
            this.reserve(headEnd - headStart + kb.length + midEnd - midStart + tail.length);
            // copyWithin is a V8 builtin; Buffer#copy goes through checks and a binding call each time
            this.buf.copyWithin(this.size, headStart, headEnd);
            this.size += headEnd - headStart;
            this.buf.set(kb, this.size);
            this.size += kb.length;
            this.buf.copyWithin(this.size, midStart, midEnd);
            this.size += midEnd - midStart;
          }
          this.buf.set(tail, this.size);
          this.size += tail.length;
          this.endLine();
        }
      }
      return;
    }
    const lp: LinePlan = { texts: [], plan: [] };
    // `event` may hold only the parts the rule tree read (rules/projection.ts): the lines need all of it
    planLines(text !== undefined ? (JSON.parse(text) as Record<string, unknown>) : event, nodes, hits, lp);
    const lines: string[] = [];
    assembleLines(lp, nodes, lines);
    for (const l of lines) {
      this.reserve(3 * l.length + 1);
      this.size += this.buf.write(l, this.size);
      this.buf[this.size++] = 10;
      this.endLine();
    }
  }

  finish(): LineBytes {
    this.flush();
    spliceScratch = this.plan;
    const bytes = new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.size);
    return { bytes, cuts: this.cuts, count: this.count };
  }
}

/** hitItems as JSON text: exactly `JSON.stringify(item)` for each item hitItems would build, in order. */
export function hitLines(event: Record<string, unknown>, nodes: readonly OutputNode[], hits: number[], out: string[]): void {
  const items: unknown[] = [];
  hitItems(event, nodes, hits, items);
  for (const item of items) out.push(JSON.stringify(item));
}
