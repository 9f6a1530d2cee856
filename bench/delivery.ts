// npm run bench (delivery part): 1, 10 and 50 agents (real spools on disk,
// mutual TLS on loopback, split over two agent processes) to one server
// process (listen → durable queue → stdout read by this process). Reports
// aggregate events/s (durable on the server AND written by its sink), agent and
// server peak RSS, and end-to-end p50/p99 latency at a fixed 5,000 events/s.
// With 10 agents also a server that runs a rule tree (gatingRules), as a share
// of the server without one. Then the same lines through rsyslog (TLS, disk-assisted queue) as a reference.
// Brief on purpose: the machine is shared.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { buildPipeline } from '../src/pipeline.js';
import { makeCerts } from '../test/helpers/certs.js';
import { rsyslogReference } from './rsyslog-reference.js';
import { rulesStages } from '../src/rules/server-keys.js';
import { defaultWorkers } from '../src/rules/engine.js';
import { benchRules } from './rule-set.js';
import { launcherFlags } from './launcher-flags.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const skafe = path.join(root, 'bin', 'skafe');
const TOTAL = Number(process.env.BENCH_DELIVERY_EVENTS ?? 150_000);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-delivery-'));
const certs = makeCerts();
const templates = path.join(work, 'templates.jsonl');
await (await buildPipeline({ stages: [{ use: 'file', path: path.join(root, 'test/fixtures/dev-1/audit.log') }, { use: 'coalesce' }, { use: 'jsonl', path: templates }] } as never, { log: { info() {}, warn() {}, error() {} } })).run();

const peakKb = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
}

interface Server {
  proc: ChildProcess;
  port: number;
  /** Resolves when `n` events have come out of the server's sink. */
  received(n: number, onEvent?: (line: string) => void): Promise<void>;
}

// The server with the benches' 100 match rules (rule-set.ts), gating and logging nothing, under
// a catch-all that logs every event once: the tree's cost on the server's own path, with
// exactly one line out per event.
function gatingRules(): string {
  const dir = path.join(work, 'rules');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'bench.rules'), '[all]\nwatch = base\naction = match\ntrigger = log\n' + benchRules(() => null));
  return dir;
}

async function startServer(tag: string, rules = false): Promise<Server> {
  const port = await freePort();
  const def = {
    stages: [
      { use: 'listen', host: '127.0.0.1', port, cert: certs.server.cert, key: certs.server.key, ca: certs.ca, credits: 32, status_events: false },
      { use: 'queue', dir: path.join(work, `queue-${tag}`) },
      // as `skafe server -config` builds it: reverse DNS (off here: nothing to look up), the tree, the fan-out to the two logs
      ...(rules ? [{ use: 'server-enrich', reverse_dns: 'off' }, ...rulesStages({ rulesdir: gatingRules(), eventlog: 'stdout', alertlog: 'stderr' })] : [{ use: 'stdout' }]),
    ],
  };
  const file = path.join(work, `server-${tag}.json`);
  fs.writeFileSync(file, JSON.stringify(def));
  const proc = spawn(process.execPath, [...launcherFlags(), ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : []), skafe, 'run', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let count = 0;
  let want = Infinity;
  let done: (() => void) | undefined;
  let each: ((l: string) => void) | undefined;
  // Throughput runs only count newlines (cheap); latency runs split lines to read each event's stamp.
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    if (each) {
      const text = partial + d.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        count++;
        each(l);
      }
    } else {
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) count++;
    }
    if (count >= want) done?.();
  });
  for (let i = 0; i < 200; i++) {
    if (await new Promise<boolean>((r) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); r(true); }).on('error', () => r(false)))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    port,
    received: (n, onEvent) => {
      each = onEvent;
      want = n;
      return new Promise<void>((r) => (count >= n ? r() : (done = r)));
    },
  };
}

function startAgents(port: number, agents: number, perAgent: number, rate: number, tag: string): Array<Promise<{ peakMb: number; pid: number }>> {
  const procs = Math.min(2, agents);
  const out = [];
  for (let p = 0; p < procs; p++) {
    const k = Math.floor(agents / procs) + (p < agents % procs ? 1 : 0);
    const first = p * Math.ceil(agents / procs);
    const arg = { agents: k, first, events: perAgent, rate, port, dir: path.join(work, `agents-${tag}`), templates, cert: certs.client.cert, key: certs.client.key, ca: certs.ca };
    const proc = spawn(process.execPath, [...launcherFlags(), ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : []), path.join(here, 'delivery-agents.js'), JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    out.push(
      new Promise<{ peakMb: number; pid: number }>((resolve, reject) => {
        let text = '';
        proc.stdout!.on('data', (d) => (text += d));
        proc.on('exit', (code) => (code === 0 ? resolve({ peakMb: JSON.parse(text.trim().split('\n').at(-1)!).peakMb, pid: proc.pid! }) : reject(new Error(`agent host exited ${code}`))));
      }),
    );
  }
  return out;
}

const rows: string[] = [];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

const runs: Array<[number, boolean]> = (process.env.BENCH_DELIVERY_AGENTS ?? '1,10,50').split(',').filter(Boolean).map((a) => [Number(a), false]);
for (const a of (process.env.BENCH_DELIVERY_RULES_AGENTS ?? '10').split(',').filter(Boolean)) runs.push([Number(a), true]);
const plain = new Map<number, number>();
for (const [agents, rules] of runs) {
  const server = await startServer(`t${agents}${rules ? 'r' : ''}`, rules);
  const perAgent = Math.ceil(TOTAL / agents);
  const total = perAgent * agents;
  const t0 = performance.now();
  const hosts = startAgents(server.port, agents, perAgent, 0, `t${agents}`);
  await server.received(total);
  const secs = (performance.now() - t0) / 1000;
  const agentPeaks = await Promise.all(hosts);
  const serverPeak = peakKb(server.proc.pid!) / 1024;
  server.proc.kill('SIGTERM');
  const rate = total / secs;
  if (!rules) plain.set(agents, rate);
  const vs = rules && plain.has(agents) ? `, ${((100 * rate) / plain.get(agents)!).toFixed(0)}% of the server without rules` : '';
  rows.push(
    `throughput  ${String(agents).padStart(2)} agents  ${fmt(rate).padStart(9)} events/s  (${fmt(total)} events in ${secs.toFixed(1)} s)  server peak RSS ${serverPeak.toFixed(0)} MB, agent process peak RSS ${agentPeaks.map((a) => a.peakMb.toFixed(0)).join('/')} MB` +
      (rules ? `\n              server with 100 match rules (server-enrich → rules, ${defaultWorkers()} worker${defaultWorkers() === 1 ? '' : 's'} (the default) → fan-out to the event and alert logs)${vs}` : ''),
  );
  process.stderr.write(rows.at(-1) + '\n');
}

// Latency: a fixed 5,000 events/s (one agent, and 10 agents at 500/s each), measured from the
// agent's source to the line coming out of the server's sink.
for (const agents of (process.env.BENCH_DELIVERY_LATENCY_AGENTS ?? '1,10').split(',').filter(Boolean).map(Number)) {
  const seconds = 8;
  const server = await startServer(`l${agents}`);
  const perAgent = (5000 / agents) * seconds;
  const lat: number[] = [];
  const hosts = startAgents(server.port, agents, perAgent, 5000 / agents, `l${agents}`);
  await server.received(perAgent * agents, (l) => {
    const i = l.lastIndexOf('"bench":{"t":');
    if (i >= 0) lat.push(performance.timeOrigin + performance.now() - parseFloat(l.slice(i + 13)));
  });
  await Promise.all(hosts);
  server.proc.kill('SIGTERM');
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!;
  rows.push(`latency     ${String(agents).padStart(2)} agents  5,000 events/s  p50 ${q(0.5).toFixed(1)} ms  p99 ${q(0.99).toFixed(1)} ms  max ${lat.at(-1)!.toFixed(1)} ms  (${lat.length} events)`);
  process.stderr.write(rows.at(-1) + '\n');
}

// Reference: rsyslog over TLS with a disk-assisted queue, the same lines.
const ref = process.env.BENCH_DELIVERY_NO_RSYSLOG ? { error: 'BENCH_DELIVERY_NO_RSYSLOG set' } : await rsyslogReference({ work, certs, templates, lines: TOTAL }).catch((e: Error) => ({ error: e.message }));
if ('error' in ref) rows.push(`rsyslog reference: not run (${ref.error})`);
else {
  const skafe10 = Number(/10 agents\s+([\d,]+)/.exec(rows.join('\n'))?.[1]?.replace(/,/g, '') ?? 0);
  rows.push(`rsyslog     TLS + disk-assisted queue, 1 sender  ${fmt(ref.eventsPerSecond)} lines/s (${fmt(ref.lines)} lines in ${ref.seconds.toFixed(1)} s); skafe 10 agents / rsyslog = ${(skafe10 / ref.eventsPerSecond).toFixed(2)}×`);
}

process.stdout.write(['', 'delivery (mTLS on loopback, spools and queue on disk):', ...rows.map((r) => '  ' + r), ''].join('\n'));
if (!process.env.SKAFE_KEEP) fs.rmSync(work, { recursive: true, force: true });
fs.rmSync(certs.dir, { recursive: true, force: true });
