import t from 'tap';
import fs from 'node:fs';
import { need } from '../helpers/env.js';
import { makeRig, exited, sleep, randomMs, waitListening, deadline } from '../helpers/conservation.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

// Acceptance (c): the network between agent and server (a TCP proxy) is cut
// 20 times while 200,000 events flow: mostly resets, every fourth a black hole
// that only the heartbeat/idle timeout can notice. Every event arrives exactly once.

t.setTimeout(290_000);
const EVENTS = Number(process.env.SKAFE_EVENTS ?? 200_000);
// Sending is throttled so the run lasts long enough for every cut to land mid-run.
const RATE = Math.max(1000, Math.round(EVENTS / 40));
const CUTS = Number(process.env.SKAFE_KILLS ?? 20);

t.test(`network cut ${CUTS}× while an agent sends ${EVENTS} events`, { timeout: 600_000 }, async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const rig = await makeRig('netcut', EVENTS, [`throttle_rate = ${RATE}`]);
  const server = rig.startServer();
  await waitListening(rig.serverPort, 30_000, rig);
  const proxy = new TcpProxy(rig.serverPort);
  rig.setAgentPort(await proxy.start());
  const agent = rig.startAgent();
  t.teardown(async () => {
    agent.kill('SIGKILL');
    server.kill('SIGKILL');
    await proxy.stop();
    if (!process.env.SKAFE_KEEP) fs.rmSync(rig.dir, { recursive: true, force: true });
  });
  let cuts = 0;
  let blackholes = 0;
  for (; cuts < CUTS && agent.exitCode === null; cuts++) {
    await sleep(randomMs(300, 1200));
    if (cuts % 4 === 3) {
      blackholes++;
      await proxy.blackhole(5000); // longer than the agent's 4 s idle timeout
    } else await proxy.reset(randomMs(50, 500));
  }
  t.ok(cuts >= Math.min(CUTS, 5), `cut the network ${cuts} times (${blackholes} black holes) mid-run`);
  const code = await Promise.race([exited(agent), deadline(300_000)]);
  t.equal(code, 0, 'the agent finished once everything was acknowledged');
  await sleep(1000);
  server.kill('SIGTERM');
  await exited(server);
  const r = rig.check();
  t.equal(r.missing.length, 0, `no event missing (first: ${r.missing.slice(0, 3).join(', ')})`);
  t.equal(r.duplicates.length, 0, `no event twice (first: ${r.duplicates.slice(0, 3).join(', ')}; of these split by coalesce: ${r.split.length})`);
  t.equal(r.unexpected.length, 0, 'nothing else');
  t.equal(r.total, rig.ids.length, `${rig.ids.length} events in the event log`);
  if (blackholes) t.match(rig.logs(), /idle timeout/, 'a black hole was detected by the idle timeout');
  if (r.missing.length || r.duplicates.length) t.comment(rig.logs().slice(-3000));
});
