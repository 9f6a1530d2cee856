import t from 'tap';
import { need } from '../helpers/env.js';
import { makeRig, serverKillRun } from '../helpers/conservation.js';

// Acceptance (b): while an agent replays 200,000 events, the server is
// SIGKILLed 20 times at random moments and restarted; the event log ends up
// with every input event exactly once (the queue's dedup drops resends, and its
// release record cuts the log back to what was released before re-emitting).

t.setTimeout(290_000);
const EVENTS = Number(process.env.SKAFE_EVENTS ?? 200_000);
// Sending is throttled so the run lasts long enough (~40 s) for every kill to land mid-run.
const RATE = Math.max(1000, Math.round(EVENTS / 40));
const KILLS = Number(process.env.SKAFE_KILLS ?? 20);

t.test(`server SIGKILLed ${KILLS}× while an agent sends ${EVENTS} events`, { timeout: 600_000 }, async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const rig = await makeRig('serverkill', EVENTS, [`throttle_rate = ${RATE}`]);
  await serverKillRun(t, rig, { kills: KILLS, minKills: 5, agentDeadlineMs: 300_000 });
  const r = rig.check();
  t.equal(r.missing.length, 0, `no event missing (first: ${r.missing.slice(0, 3).join(', ')})`);
  t.equal(r.duplicates.length, 0, `no event twice (first: ${r.duplicates.slice(0, 3).join(', ')}; of these split by coalesce: ${r.split.length})`);
  t.equal(r.unexpected.length, 0, 'nothing else');
  t.equal(r.total, rig.ids.length, `${rig.ids.length} events in the event log`);
  if (r.missing.length || r.duplicates.length) t.comment(rig.logs().slice(-3000));
});
