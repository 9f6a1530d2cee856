import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { need, fixtures } from '../helpers/env.js';
import { skafe, tmpdir, readJsonl } from '../helpers/run.js';

// `npm start` runs `skafe demo`: agent → mutual TLS → server → default rules → event and alert logs.
t.test('skafe demo runs the whole system with embedded defaults', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const dir = tmpdir(t);
  const r = await skafe(['demo', '--dir', dir], { timeoutMs: 120000 });
  t.equal(r.code, 0, r.stderr);
  const events = readJsonl(fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8'));
  const audit = events.filter((e) => e.event.module === 'auditd');
  const expected = new Set(readJsonl(fs.readFileSync(fixtures('dev-1', 'expected.jsonl'), 'utf8')).map((e) => e.id));
  t.same(new Set(audit.map((e) => e.event.id)), expected, 'every event of the sample in the event log');
  t.equal(audit.length, expected.size, 'each once');
  t.ok(audit.every((e) => e.rule.name === 'all' && typeof e.agent.name === 'string' && e.agent.id), 'rule and agent identity on every line');
  const alerts = readJsonl(fs.readFileSync(path.join(dir, 'alerts.jsonl'), 'utf8'));
  for (const f of ['events.jsonl', 'alerts.jsonl']) t.notMatch(fs.readFileSync(path.join(dir, f), 'utf8'), /(^|\n)\n/, `${f}: no blank lines`);
  t.ok(alerts.some((e) => e.rule.name === 'root-exec') && alerts.some((e) => e.rule.name === 'identity-change'), 'default rules raise alerts');
  t.ok(alerts.every((e) => e.event.kind === 'alert'));
  t.match(r.stderr, /mutual TLS/);
});
