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
// serialized once, not seven times. The random part makes a collision with
// event content practically impossible, and hitLines checks anyway: if a
// placeholder does not occur exactly once it serializes each item in full.
const nonce = randomBytes(12).toString('hex');
const RULE_MARK = `\u0000skafe-rule-${nonce}\u0000`;
const KIND_MARK = `\u0000skafe-kind-${nonce}\u0000`;
const RULE_TOKEN = JSON.stringify(RULE_MARK);
const KIND_TOKEN = JSON.stringify(KIND_MARK);
const KIND_EVENT = '"event"';
const KIND_ALERT = '"alert"';

function onlyOnce(s: string, token: string): number {
  const i = s.indexOf(token);
  return i >= 0 && s.indexOf(token, i + token.length) < 0 ? i : -1;
}

/**
 * hitItems as JSON text: pushes exactly `JSON.stringify(item)` for each item
 * hitItems would build, in the same order.
 */
export function hitLines(event: Record<string, unknown>, nodes: readonly OutputNode[], hits: number[], out: string[]): void {
  if (hits.length === 0) return;
  const template = JSON.stringify({ ...event, rule: RULE_MARK, event: { ...(event.event as object | undefined), kind: KIND_MARK } });
  const r = onlyOnce(template, RULE_TOKEN);
  const k = onlyOnce(template, KIND_TOKEN);
  if (r < 0 || k < 0) {
    const items: unknown[] = [];
    hitItems(event, nodes, hits, items);
    for (const item of items) out.push(JSON.stringify(item));
    return;
  }
  // Three fixed pieces around the two placeholders, whichever comes first.
  const ruleFirst = r < k;
  const [p1, l1, p2, l2] = ruleFirst ? [r, RULE_TOKEN.length, k, KIND_TOKEN.length] : [k, KIND_TOKEN.length, r, RULE_TOKEN.length];
  const a = template.slice(0, p1);
  const b = template.slice(p1 + l1, p2);
  const c = template.slice(p2 + l2);
  const own = event.rule;
  for (const h of hits) {
    const n = nodes[h]!;
    const rule = own === undefined || own === null ? n.ruleJson : JSON.stringify({ ...(own as object), name: n.name, ruleset: n.ruleset });
    if (n.trigger === 'log' || n.trigger === 'both') out.push(ruleFirst ? a + rule + b + KIND_EVENT + c : a + KIND_EVENT + b + rule + c);
    if (n.trigger === 'alert' || n.trigger === 'both') out.push(ruleFirst ? a + rule + b + KIND_ALERT + c : a + KIND_ALERT + b + rule + c);
  }
}
