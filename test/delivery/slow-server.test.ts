import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { need, skafeBin } from '../helpers/env.js';
import { makeRig, exited, sleep, waitListening, deadline } from '../helpers/conservation.js';

// Acceptance: with the server's sink slowed to 1 ms/event (a 1,000 events/s
// throttle before the event log) and a small server queue, the server stops
// granting credits, the agent keeps the backlog in its spool, the server stays
// under 300 MB, and everything drains afterwards with nothing lost.

t.setTimeout(290_000);
const EVENTS = Number(process.env.SKAFE_EVENTS ?? 20_000);

function rssPeakKb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

t.test(`slow server sink (1 ms/event), ${EVENTS} events`, async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const rig = await makeRig('slow', EVENTS);
  const conf = fs.readFileSync(rig.serverConf, 'utf8');
  const get = (k: string) => new RegExp(`^${k} = (.*)$`, 'm').exec(conf)![1]!;
  const def = {
    stages: [
      { use: 'listen', host: '127.0.0.1', port: rig.serverPort, cert: get('tlscert'), key: get('tlskey'), ca: get('tlsca'), credits: 8 },
      { use: 'queue', dir: 'queue', max_bytes: 512 * 1024, sink_files: ['events.jsonl'] },
      { use: 'throttle', rate: 1000, burst: 100 },
      { use: 'jsonl', path: 'events.jsonl' },
    ],
  };
  const defFile = path.join(rig.dir, 'slow-server.json');
  fs.writeFileSync(defFile, JSON.stringify(def));
  const server = spawn(process.execPath, [skafeBin, 'run', defFile], { cwd: rig.dir, stdio: ['ignore', 'ignore', 'inherit'] });
  const agent = (await waitListening(rig.serverPort, 30_000, rig), rig.startAgent());
  t.teardown(() => {
    agent.kill('SIGKILL');
    server.kill('SIGKILL');
    if (!process.env.SKAFE_KEEP) fs.rmSync(rig.dir, { recursive: true, force: true });
  });

  // A few seconds in: the server has written about 1,000/s, the rest waits in the agent's spool.
  await sleep(6000);
  const early = rig.check().total;
  const spoolBytes = dirBytes(path.join(rig.dir, 'spool'));
  const queueBytes = dirBytes(path.join(rig.dir, 'queue'));
  t.ok(early < 10_000, `the sink's pace holds: ${early} events written after 6 s`);
  t.ok(spoolBytes > queueBytes, `the backlog waits in the agent spool (${spoolBytes} B) more than in the server queue (${queueBytes} B)`);

  const code = await Promise.race([exited(agent), deadline(240_000)]);
  t.equal(code, 0, 'the agent drained and finished');
  const peakMb = rssPeakKb(server.pid!) / 1024;
  t.ok(peakMb > 0 && peakMb < 300, `server peak RSS ${peakMb.toFixed(0)} MB < 300 MB`);
  await sleep(500);
  server.kill('SIGTERM');
  await exited(server);
  const r = rig.check();
  t.equal(r.missing.length, 0, 'nothing lost');
  t.equal(r.duplicates.length, 0, 'nothing twice');
  t.equal(r.total, rig.ids.length);
});
