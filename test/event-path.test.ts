import t from 'tap';
import fs from 'node:fs';
import { parseRecordLine, type AuditRecord } from '../src/audit/record.js';
import { interpret } from '../src/audit/interpret.js';
import { valuesAt, valuesAtJson } from '../src/event-path.js';
import { fixtures } from './helpers/env.js';

// The text walker must answer exactly as valuesAt on the parsed event (as a set: order may differ).
t.test('valuesAtJson agrees with valuesAt on every event of both corpora', async (t) => {
  const paths = ['event.kind', 'event.id', 'user.name', 'process.args', 'process.pid', 'auditd.records.type', 'auditd.records.fields.name', 'auditd.paths.name', 'tags', 'auditd.data', 'no.such.path', 'event', '@timestamp', 'rule.name', 'auditd.sequence'];
  let compared = 0;
  for (const corpus of ['dev-1', 'dev-2']) {
    const groups = new Map<string, AuditRecord[]>();
    for (const line of fs.readFileSync(fixtures(corpus, 'audit.log'), 'utf8').split('\n')) {
      const r = parseRecordLine(line);
      if ('error' in r) continue;
      const k = (r.node ?? '') + r.id;
      (groups.get(k) ?? groups.set(k, []).get(k)!).push(r);
    }
    for (const recs of groups.values()) {
      const ev = { ...interpret(recs), rule: { name: 'x.y', ruleset: 'a "quoted" \\ file' } };
      const text = JSON.stringify(ev);
      for (const p of paths) {
        const a = [...valuesAt(ev, p)].sort();
        const b = [...valuesAtJson(text, p)].sort();
        if (JSON.stringify(a) !== JSON.stringify(b)) t.fail(`${corpus} ${ev.event.id} ${p}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
        compared++;
      }
    }
  }
  t.ok(compared > 10000, `${compared} comparisons`);
});

t.test('escapes, nesting, whitespace and flat dotted keys', async (t) => {
  const doc = { a: { 'b.c': 1, d: [{ e: 'x"}]' }, { e: 'y\\\\' }, { f: null }] }, s: '\u2603', n: null, t: true };
  const text = JSON.stringify(doc, null, 2);
  for (const p of ['a.b.c', 'a.d.e', 'a.d.f', 's', 'n', 't', 'a.d']) t.same([...valuesAtJson(text, p)].sort(), [...valuesAt(doc, p)].sort(), p);
});
