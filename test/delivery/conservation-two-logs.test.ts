import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { need } from '../helpers/env.js';
import { makeRig, serverKillRun } from '../helpers/conservation.js';

// Exactly once in every log: a server with rules writes each event to its
// event log and its alert log (one rule, trigger = both), and is SIGKILLed
// at random moments while an agent sends. The two logs are written by two
// branches of a fan-out, one ahead of the other at any moment; the queue must
// cut each file back to where that file stood at the last release, or the
// log that was ahead gets lines twice after a restart.

t.setTimeout(290_000);
const EVENTS = Number(process.env.SKAFE_EVENTS ?? 60_000);
const RATE = Math.max(1000, Math.round(EVENTS / 20));
const KILLS = Number(process.env.SKAFE_KILLS ?? 10);

t.test(`server with two logs SIGKILLed ${KILLS}× while an agent sends ${EVENTS} events`, { timeout: 280_000 }, async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const rig = await makeRig('twologs', EVENTS, [`throttle_rate = ${RATE}`], ['rulesdir = rules', 'alertlog = alerts.jsonl', 'workers = 1']);
  fs.mkdirSync(path.join(rig.dir, 'rules'));
  fs.writeFileSync(path.join(rig.dir, 'rules', 'all.rules'), '[all]\nwatch = base\naction = match\ntrigger = both\nmatch_event.id = .\n');
  await serverKillRun(t, rig, { kills: KILLS, minKills: 4, agentDeadlineMs: 240_000 });
  for (const [name, file] of [['event log', rig.eventLog], ['alert log', path.join(rig.dir, 'alerts.jsonl')]] as const) {
    const r = rig.check(file);
    t.equal(r.missing.length, 0, `${name}: no event missing (first: ${r.missing.slice(0, 3).join(', ')})`);
    t.equal(r.duplicates.length, 0, `${name}: no event twice (first: ${r.duplicates.slice(0, 3).join(', ')}; split by coalesce: ${r.split.length})`);
    t.equal(r.total, rig.ids.length, `${name}: ${rig.ids.length} events`);
  }
});
