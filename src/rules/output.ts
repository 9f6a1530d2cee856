import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RuleNode } from './load.js';

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
}

export function outputNodes(nodes: readonly RuleNode[]): OutputNode[] {
  return nodes.map((n) => {
    const ruleset = path.basename(n.file);
    return { name: n.name, ruleset, trigger: n.trigger, ruleJson: JSON.stringify({ name: n.name, ruleset }) };
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

/** The lines of a LinePlan, in order. */
export function assembleLines(lp: LinePlan, nodes: readonly OutputNode[], out: string[]): void {
  const { texts, plan } = lp;
  let t = 0;
  for (let i = 0; i < plan.length; ) {
    const code = plan[i++]!;
    const n = plan[i++]!;
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

/** hitItems as JSON text: exactly `JSON.stringify(item)` for each item hitItems would build, in order. */
export function hitLines(event: Record<string, unknown>, nodes: readonly OutputNode[], hits: number[], out: string[]): void {
  const items: unknown[] = [];
  hitItems(event, nodes, hits, items);
  for (const item of items) out.push(JSON.stringify(item));
}
