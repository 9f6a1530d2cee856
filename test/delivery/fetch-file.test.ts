// skafe.fetchFile end to end: a script rule on the server asks the agent that
// sent the event for a file over the agent's own mutual-TLS link. The agent
// serves the executable of an event it reported and its fetch_allow paths,
// refuses anything else (another file, a symbolic link, one over its size cap)
// with a reason the script sees; the server computes the sha256 of what came.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { buildPipeline } from '../../src/pipeline.js';
import { makeCerts } from '../helpers/certs.js';
import { need } from '../helpers/env.js';
import { memoryLogger, readEventLog, startServer } from '../helpers/delivery.js';
import { isStatusEvent } from '../../src/link/status.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('a script rule fetches files from the agent that sent the event', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const certs = makeCerts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-fetch-'));
  t.teardown(() => {
    fs.rmSync(certs.dir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // The "executable" the events name, a file under fetch_allow, a link to it, one too big.
  const tool = path.join(dir, 'tool');
  fs.writeFileSync(tool, '#!/bin/sh\necho tool\n', { mode: 0o755 });
  const allowed = path.join(dir, 'allowed');
  fs.mkdirSync(allowed);
  fs.writeFileSync(path.join(allowed, 'notes.txt'), 'allowed bytes \u0000\u00ff\n');
  fs.symlinkSync(tool, path.join(allowed, 'link'));
  fs.writeFileSync(path.join(allowed, 'big'), Buffer.alloc(5000, 1));

  // Each event says (in its key) which path its script call asks for.
  const asks: Record<string, string> = {
    own: tool,
    other: '/etc/passwd',
    allowed: path.join(allowed, 'notes.txt'),
    link: path.join(allowed, 'link'),
    big: path.join(allowed, 'big'),
    relative: 'etc/passwd',
  };
  const log = path.join(dir, 'audit.log');
  fs.writeFileSync(
    log,
    Object.keys(asks)
      .map(
        (key, i) =>
          `type=SYSCALL msg=audit(1795000000.${100 + i}:${500 + i}): arch=c000003e syscall=59 success=yes exit=0 a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=${100 + i} auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="tool" exe="${tool}" key="${key}"\n`,
      )
      .join(''),
  );
  const rulesdir = path.join(dir, 'rules');
  fs.mkdirSync(rulesdir);
  fs.writeFileSync(path.join(rulesdir, 'fetch.rules'), '[fetch]\nwatch = base\naction = script\ntrigger = log\nscript = fetchcheck\n');
  fs.writeFileSync(
    path.join(rulesdir, 'fetchcheck.js'),
    `const asks = ${JSON.stringify(asks)};
export async function check(e) {
  const key = e.tags?.[0];
  if (!key) return false; // the server's own status events
  try {
    const f = await skafe.fetchFile(asks[key]);
    skafe.log(\`GOT \${key} \${f.sha256} \${f.bytes.length}\`);
    return true;
  } catch (x) {
    skafe.log(\`ERR \${key}: \${x.message}\`);
    return false;
  }
}
`,
  );

  const serverLog = memoryLogger();
  const eventLog = path.join(dir, 'events.jsonl');
  const server = await startServer({ certs, queueDir: path.join(dir, 'queue'), eventLog, log: serverLog, extra: [{ use: 'rules', rulesdir, workers: 1, reload: false }] });
  const agentLog = memoryLogger();
  const agent = await buildPipeline(
    {
      stages: [
        // followed: the agent stays up (and connected) until stopped, as a real one does
        { use: 'file', path: log, follow: true },
        { use: 'coalesce', idleTimeoutMs: 100 },
        { use: 'spool', dir: path.join(dir, 'spool') },
        { use: 'tls', servers: [`127.0.0.1:${server.port}`], cert: certs.client.cert, key: certs.client.key, ca: certs.ca, fetch_allow: [allowed + '/'], fetch_max_bytes: 4096 },
      ],
    } as never,
    { log: agentLog },
  );
  // The agent must stay connected while the server's scripts ask: run it until the answers are in.
  const agentDone = agent.run();
  const answered = () => serverLog.lines.filter((l) => / (GOT|ERR) /.test(l)).length;
  for (let i = 0; i < 200 && answered() < Object.keys(asks).length; i++) await new Promise((r) => setTimeout(r, 50));
  const lines = serverLog.lines.join('\n');
  agent.stop();
  await agentDone;
  server.pipeline.stop();
  await server.done;

  t.match(lines, `GOT own ${sha(fs.readFileSync(tool))} ${fs.statSync(tool).size}`, "the event's own executable: its bytes and sha256");
  t.match(lines, `GOT allowed ${sha(fs.readFileSync(path.join(allowed, 'notes.txt')))} `, 'a file under fetch_allow');
  t.match(lines, /ERR other: fetchFile: agent \S+ would not send \/etc\/passwd: \/etc\/passwd is not allowed: this agent serves only the executables of events it reported/, 'another file: refused, with the reason');
  t.match(lines, /ERR link: .*is a symbolic link/, 'a symbolic link: refused');
  t.match(lines, /ERR big: .*5000 bytes, over this agent's fetch_max_bytes \(4096\)/, 'over the size cap: refused');
  t.match(lines, /ERR relative: .*not an absolute, normalized path/, 'a relative path: refused');
  const logged = readEventLog(eventLog).filter((e) => !isStatusEvent(e));
  t.same(logged.map((e) => e.tags[0]).sort(), ['allowed', 'own'], 'the rule fired for the two files that came');
  t.ok(agentLog.lines.some((l) => /refused the server's request for a file/.test(l)), 'the agent logs what it refused');
});

t.test('fetchFile for an event that came over no link, or from an agent not connected', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-fetch-none-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = await startServer({ tls: false, queueDir: path.join(dir, 'queue'), eventLog: path.join(dir, 'events.jsonl') });
  const fetchFile = server.pipeline.services.get('fetchFile') as (r: { path: string; event: unknown }) => Promise<unknown>;
  t.type(fetchFile, 'function', 'the listener offers fetchFile to the rule stage');
  await t.rejects(fetchFile({ path: '/bin/sh', event: { process: {} } }), /names no agent/);
  await t.rejects(fetchFile({ path: '/bin/sh', event: { agent: { name: 'gone', id: 'abcdef01' } } }), /agent gone is not connected/);
  server.pipeline.stop();
  await server.done;
});
