import t from 'tap';
import fs from 'node:fs';
import { need } from '../helpers/env.js';
import { makeRig, exited, sleep, randomMs, waitListening, deadline } from '../helpers/conservation.js';

// Acceptance (a): an agent replaying 200,000 events is SIGKILLed 20 times at
// random moments and restarted; the server's event log ends up with every
// input event exactly once and nothing else. SKAFE_KILLS / SKAFE_EVENTS shrink it.

t.setTimeout(290_000);
const EVENTS = Number(process.env.SKAFE_EVENTS ?? 200_000);
// Sending is throttled so the run lasts long enough (~40 s) for every kill to land mid-run.
const RATE = Math.max(1000, Math.round(EVENTS / 40));
const KILLS = Number(process.env.SKAFE_KILLS ?? 20);

t.test(`agent SIGKILLed ${KILLS}× while replaying ${EVENTS} events`, { timeout: 600_000 }, async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const rig = await makeRig('agentkill', EVENTS, [`throttle_rate = ${RATE}`]);
  const server = rig.startServer();
  t.teardown(() => {
    server.kill('SIGKILL');
    if (!process.env.SKAFE_KEEP) fs.rmSync(rig.dir, { recursive: true, force: true });
  });
  await waitListening(rig.serverPort, 30_000, rig);
  let kills = 0;
  for (; kills < KILLS; kills++) {
    const agent = rig.startAgent();
    // Every fourth kill lands early, before the first resume cursor can have been committed.
    await sleep(kills % 4 === 0 ? randomMs(150, 400) : randomMs(300, 1500));
    if (agent.exitCode !== null) break; // finished before we got to kill it
    agent.kill('SIGKILL');
    await exited(agent);
  }
  t.ok(kills >= Math.min(KILLS, 5), `killed the agent ${kills} times mid-run`);
  const last = rig.startAgent();
  const code = await Promise.race([exited(last), deadline(300_000)]);
  t.equal(code, 0, 'the last agent run finished once everything was acknowledged');
  server.kill('SIGTERM');
  await exited(server);
  const r = rig.check();
  t.equal(r.missing.length, 0, `no event missing (first: ${r.missing.slice(0, 3).join(', ')})`);
  t.equal(r.duplicates.length, 0, `no event twice (first: ${r.duplicates.slice(0, 3).join(', ')}; of these split by coalesce: ${r.split.length})`);
  t.equal(r.unexpected.length, 0, 'nothing else');
  t.equal(r.total, rig.ids.length, `${rig.ids.length} events in the event log`);
  if (r.missing.length || r.duplicates.length) t.comment(rig.logs().slice(-3000));
});
