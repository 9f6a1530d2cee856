// The agent's connect_timeout: a server host that drops connection attempts
// (here a listener whose accept queue is full, so the kernel drops the SYNs)
// is given up on after connect_timeout, and the next server in the list takes
// the events, instead of the agent hanging for the kernel's minutes.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { buildPipeline } from '../../src/pipeline.js';
import { fixtures, need } from '../helpers/env.js';
import { memoryLogger, readEventLog, startServer } from '../helpers/delivery.js';
import { isStatusEvent } from '../../src/link/status.js';

// Listens with a backlog of 0 and never accepts; three connections fill the queue.
const STUCK = `
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
fill = []
for i in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    fill.append(c)
print(s.getsockname()[1], flush=True)
time.sleep(120)
`;

t.test('a server that never completes the TCP connect: given up after connect_timeout, the next one used', async (t) => {
  if (!need(t as never, { tool: 'python3' })) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-connect-'));
  const stuck = spawn('python3', ['-c', STUCK], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    stuck.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const [first] = (await once(stuck.stdout!, 'data')) as [Buffer];
  const stuckPort = Number(first.toString().trim());
  const eventLog = path.join(dir, 'events.jsonl');
  const server = await startServer({ tls: false, queueDir: path.join(dir, 'queue'), eventLog });
  const log = memoryLogger();
  const agent = await buildPipeline(
    {
      stages: [
        { use: 'file', path: fixtures('dev-1', 'audit.log') },
        { use: 'coalesce' },
        { use: 'spool', dir: path.join(dir, 'spool') },
        { use: 'tls', tls: false, servers: [`127.0.0.1:${stuckPort}`, `127.0.0.1:${server.port}`], connect_timeout: 0.5, backoff_initial: 0.05 },
      ],
    } as never,
    { log },
  );
  const started = Date.now();
  await agent.run();
  const took = Date.now() - started;
  // acknowledged means queued durably; the event log is written just after
  const count = () => readEventLog(eventLog).filter((e) => !isStatusEvent(e)).length;
  for (let i = 0; i < 100 && count() < 496; i++) await new Promise((r) => setTimeout(r, 50));
  server.pipeline.stop();
  await server.done;
  t.match(log.lines.join('\n'), /no TCP connection to 127\.0\.0\.1:\d+ within 0\.5s \(connect timeout\)/, 'the stuck server: connect timeout, logged');
  t.ok(took < 8000, `the agent went on to the next server at once (${took} ms for all of it)`);
  const got = count();
  t.equal(got, 496, `the next server got every event (${got})`);
});
