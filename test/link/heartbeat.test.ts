// A quiet agent stays connected to a server whose idle timeout is shorter than
// the agent's heartbeat: the agent pings at the rate the server's WELCOME asks.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildPipeline } from '../../src/pipeline.js';
import type { ListenSource } from '../../src/sources/listen.js';
import { memoryLogger } from '../helpers/delivery.js';

t.test("the agent adopts the server's heartbeat when it asks for more", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-heartbeat-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const serverLog = memoryLogger();
  // The server wants a frame at least every 0.3 s (idle timeout 0.9 s).
  const server = await buildPipeline(
    { stages: [{ use: 'listen', tls: false, host: '127.0.0.1', port: 0, heartbeat: 5, idle_timeout: 0.9, status_events: false }, { use: 'queue', dir: path.join(dir, 'queue') }, { use: 'jsonl', path: path.join(dir, 'events.jsonl') }] } as never,
    { log: serverLog },
  );
  const port = (server.services.get('listen') as ListenSource).address().port;
  const serverDone = server.run();
  fs.writeFileSync(path.join(dir, 'audit.log'), '');
  // The agent's own heartbeat is 10 s: on its own it would stay silent with nothing to send.
  const agentLog = memoryLogger();
  const agent = await buildPipeline(
    {
      stages: [
        { use: 'file', path: path.join(dir, 'audit.log'), follow: true },
        { use: 'coalesce' },
        { use: 'spool', dir: path.join(dir, 'spool'), status_events: false },
        { use: 'tls', tls: false, servers: [`127.0.0.1:${port}`], heartbeat: 10, idle_timeout: 30 },
      ],
    } as never,
    { log: agentLog },
  );
  const agentDone = agent.run();
  await new Promise((r) => setTimeout(r, 3000));
  agent.stop();
  await agentDone;
  server.stop();
  await serverDone;
  const lines = serverLog.lines.join('\n');
  t.match(lines, /agent \S+ connected/, 'the agent connected');
  t.notMatch(lines, /idle timeout/, `no idle-timeout disconnect in 3 s of silence: ${serverLog.lines.filter((l) => /disconnect/.test(l)).join(' | ')}`);
  t.equal((lines.match(/ connected from /g) ?? []).length, 1, 'one connection all along');
});
