import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { makeCerts } from './certs.js';
import { fixtures, skafeBin } from './env.js';
import { makeReplayLog } from './replay-log.js';
import { readEventLog } from './delivery.js';
import { isStatusEvent } from '../../src/link/status.js';

// Real `skafe agent` and `skafe server` processes with INI configs, for tests
// that SIGKILL them or cut the network between them.

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const randomMs = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Rig {
  dir: string;
  ids: string[];
  eventLog: string;
  serverPort: number;
  agentConf: string;
  serverConf: string;
  startServer(): ChildProcess;
  startAgent(): ChildProcess;
  /** Point the agent at another port (a proxy). */
  setAgentPort(port: number): void;
  /** Each input event once in `file` (default: the event log)? */
  check(file?: string): { missing: string[]; duplicates: string[]; split: string[]; unexpected: string[]; total: number };
  logs(): string;
}

export async function makeRig(name: string, events: number, agentExtra: string[] = [], serverExtra: string[] = []): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `skafe-${name}-`));
  const certs = makeCerts();
  // The certificates go with the rig's directory, which the tests remove.
  const certsFrom = certs.dir;
  fs.renameSync(certsFrom, path.join(dir, 'certs'));
  const moved = (p: string) => path.join(dir, 'certs', path.relative(certsFrom, p));
  for (const k of Object.keys(certs) as Array<keyof typeof certs>) {
    const v = certs[k] as unknown;
    if (typeof v === 'string') (certs as unknown as Record<string, string>)[k] = moved(v);
    else (certs as unknown as Record<string, { cert: string; key: string }>)[k] = { cert: moved((v as { cert: string }).cert), key: moved((v as { key: string }).key) };
  }
  const input = path.join(dir, 'audit.log');
  const { ids } = await makeReplayLog(fixtures('dev-1', 'audit.log'), input, events);
  const serverPort = await freePort();
  const eventLog = path.join(dir, 'events.jsonl');
  const serverConf = path.join(dir, 'server.conf');
  const agentConf = path.join(dir, 'agent.conf');
  fs.writeFileSync(
    serverConf,
    [`port = ${serverPort}`, 'host = 127.0.0.1', `tlscert = ${certs.server.cert}`, `tlskey = ${certs.server.key}`, `tlsca = ${certs.ca}`, 'queuedir = queue', 'eventlog = events.jsonl', 'reverse_dns = off', ...serverExtra].join('\n') + '\n',
  );
  const agentBase = (port: number) =>
    [
      '# conservation test agent',
      'server = 127.0.0.1',
      `port = ${port}`,
      'tls = true',
      `tlscert = ${certs.client.cert}`,
      `tlskey = ${certs.client.key}`,
      `tlscac = ${certs.ca}`,
      `source = ${input}`,
      'follow = false',
      'spooldir = spool',
      'backoff_max = 1s',
      'heartbeat = 1s',
      'idle_timeout = 4s',
      ...agentExtra,
    ].join('\n') + '\n';
  fs.writeFileSync(agentConf, agentBase(serverPort));
  const logFile = path.join(dir, 'processes.log');
  const spawnSkafe = (args: string[]) => {
    const out = fs.openSync(logFile, 'a');
    const p = spawn(process.execPath, [skafeBin, ...args], { cwd: dir, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    return p;
  };
  return {
    dir,
    ids,
    eventLog,
    serverPort,
    agentConf,
    serverConf,
    startServer: () => spawnSkafe(['server', '-config', serverConf]),
    startAgent: () => spawnSkafe(['agent', '--config', agentConf]),
    setAgentPort: (port) => fs.writeFileSync(agentConf, agentBase(port)),
    logs: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    check(file = eventLog) {
      const events = readEventLog(file).filter((e) => !isStatusEvent(e));
      const got = events.map((e) => String(e.event?.id));
      const want = new Set(ids);
      const seen = new Set<string>();
      const duplicates: string[] = [];
      const unexpected: string[] = [];
      for (const id of got) {
        if (seen.has(id)) duplicates.push(id);
        else seen.add(id);
        if (!want.has(id)) unexpected.push(id);
      }
      // A duplicate whose copies differ was split by the agent's reading (coalesce), not resent by delivery.
      const split = duplicates.filter((id) => new Set(events.filter((e) => e.event.id === id).map((e) => JSON.stringify(e.auditd?.records))).size > 1);
      return { missing: ids.filter((id) => !seen.has(id)), duplicates, split, unexpected, total: got.length };
    },
  };
}

/**
 * The server-kill scenario: start the rig's server and agent, SIGKILL and
 * restart the server up to `kills` times at random moments (0.3–1.5 s apart)
 * while the agent sends, wait for the agent to finish (everything
 * acknowledged), then stop the server cleanly. The caller checks the logs.
 */
export async function serverKillRun(
  t: { teardown(f: () => void): void; ok(v: unknown, m: string): void; equal(a: unknown, b: unknown, m: string): void },
  rig: Rig,
  o: { kills: number; minKills: number; agentDeadlineMs: number },
): Promise<void> {
  let server = rig.startServer();
  await waitListening(rig.serverPort, 30_000, rig);
  const agent = rig.startAgent();
  t.teardown(() => {
    agent.kill('SIGKILL');
    server.kill('SIGKILL');
    if (!process.env.SKAFE_KEEP) fs.rmSync(rig.dir, { recursive: true, force: true });
  });
  let kills = 0;
  for (; kills < o.kills && agent.exitCode === null; kills++) {
    await sleep(randomMs(300, 1500));
    server.kill('SIGKILL');
    await exited(server);
    await sleep(randomMs(0, 300));
    server = rig.startServer();
    await waitListening(rig.serverPort, 30_000, rig);
  }
  t.ok(kills >= Math.min(o.kills, o.minKills), `killed the server ${kills} times mid-run`);
  const code = await Promise.race([exited(agent), deadline(o.agentDeadlineMs)]);
  t.equal(code, 0, 'the agent finished once everything was acknowledged');
  // The agent's last acks mean durable in the queue; give the sinks a moment, then stop cleanly.
  await sleep(1500);
  server.kill('SIGTERM');
  await exited(server);
}

/** Resolves to 'timeout' after ms without holding the process open. */
export function deadline(ms: number): Promise<'timeout'> {
  return new Promise((r) => setTimeout(() => r('timeout'), ms).unref());
}

export function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

/** Wait until the server's event log holds `n` non-status lines or the deadline passes. */
export async function waitForEvents(rig: Rig, n: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (rig.check().total >= n) return;
    await sleep(250);
  }
}

export async function waitListening(port: number, ms = 30_000, rig?: Rig): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms${rig ? `; process log tail:\n${rig.logs().slice(-2000)}` : ''}`);
}
