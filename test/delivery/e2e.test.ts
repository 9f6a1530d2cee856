import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildPipeline } from '../../src/pipeline.js';
import { makeCerts } from '../helpers/certs.js';
import { fixtures, need } from '../helpers/env.js';
import { memoryLogger, startServer, readEventLog } from '../helpers/delivery.js';
import { isStatusEvent } from '../../src/link/status.js';

const auditLog = fixtures('dev-1', 'audit.log');

/** The ids the agent's own reading produces (file → coalesce), written locally without any link. */
async function referenceIds(dir: string): Promise<string[]> {
  const out = path.join(dir, 'reference.jsonl');
  await (await buildPipeline({ stages: [{ use: 'file', path: auditLog }, { use: 'coalesce' }, { use: 'jsonl', path: out }] } as never, { log: memoryLogger() })).run();
  return readEventLog(out).map((e) => e.event.id);
}

// The queue hands the sink event text when the next stage takes it (jsonl, server-enrich with
// no DNS to do) and objects otherwise (throttle): both paths must give the same result.
for (const [variant, extra] of [
  ['encoded path', [{ use: 'server-enrich', reverse_dns: 'off' }]],
  ['object path', [{ use: 'throttle', rate: 1_000_000 }]],
] as const) t.test(`${variant}: agent file → spool → mTLS → listen → queue → jsonl: every event once, with agent identity`, async (t) => {
  if (!need(t as never, { tool: "openssl" })) return;
  const certs = makeCerts();
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-e2e-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const eventLog = path.join(dir, 'events.jsonl');
  const expectedIds = await referenceIds(dir);
  t.ok(expectedIds.length > 400, `reference has ${expectedIds.length} events`);
  const server = await startServer({ certs, queueDir: path.join(dir, 'queue'), eventLog, extra: [...extra] });
  const agentDef = (spoolDir: string) => ({
    stages: [
      { use: 'file', path: auditLog },
      { use: 'coalesce' },
      { use: 'enrich', host_name: 'test-host' },
      { use: 'spool', dir: spoolDir },
      { use: 'tls', servers: [`127.0.0.1:${server.port}`], cert: certs.client.cert, key: certs.client.key, ca: certs.ca, name: 'ignored-when-cert' },
    ],
  });
  const log = memoryLogger();
  const agent = await buildPipeline(agentDef(path.join(dir, 'spool')) as never, { log });
  await agent.run();
  // The agent ended only once everything was acknowledged: the spool is empty.
  const spoolCounters = agent.stages.find((s) => s.use === 'spool')!.counters;
  t.equal(spoolCounters.in, expectedIds.length, 'coalesce produced the expected number of events');

  // Let the server sink catch up, then stop it.
  for (let i = 0; i < 100 && readEventLog(eventLog).filter((e) => !isStatusEvent(e)).length < expectedIds.length; i++) await new Promise((r) => setTimeout(r, 50));
  server.pipeline.stop();
  await server.done;

  const events = readEventLog(eventLog);
  const audit = events.filter((e) => !isStatusEvent(e));
  const ids = audit.map((e) => e.event.id);
  t.equal(new Set(ids).size, ids.length, 'no duplicates');
  t.same([...ids].sort(), [...expectedIds].sort(), 'exactly the input events');
  t.equal(audit[0]!.agent.name, 'agent-1', 'agent.name is the certificate CN');
  t.match(audit[0]!.agent.id, /^[0-9a-f]{32}$/, 'agent.id is the spool identity');
  t.equal(audit[0]!.host.name, 'test-host');
  const actions = events.filter(isStatusEvent).map((e) => e.event.action);
  t.ok(actions.includes('agent-started'), 'agent-started status event delivered');
  t.ok(actions.includes('agent-stopped'), 'agent-stopped status event delivered');
  t.ok(actions.includes('agent-connected'), 'server recorded agent-connected');

  // Replaying the same spool identity again: the server's dedup has its high-water mark.
  const queueCounters = server.pipeline.stages.find((s) => s.use === 'queue')!.counters;
  t.equal(queueCounters.extra.duplicates ?? 0, 0, 'no resends needed in a clean run');
});
