import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { buildPipeline, type PipelineDefinition } from '../../pipeline.js';
import type { Logger } from '../../stage.js';
import { serverDefinition } from '../../config/server-config.js';
import { agentDefinition } from '../../config/agent-config.js';
import { parseArgs } from '../args.js';
import { pipelinesDir } from './agent.js';
import { statsTable } from '../progress.js';

export const summary = 'the whole system on this host with embedded defaults: agent → mutual TLS → server → rules → logs (skafe demo [--dir DIR] [--log FILE])';

// `npm start`: an agent replays the bundled audit log (pipelines/samples) through
// coalesce → enrich → spool → throttle → TLS to a server on loopback, which
// queues, enriches, runs the default rules (pipelines/rules/default) and writes
// the event and alert logs. Certificates are made fresh with openssl. The same
// INI keys an operator would write are used, so this is `skafe agent` and
// `skafe server` as shipped, in one process.

function makeCerts(dir: string, agentName: string): { ca: string; server: [string, string]; agent: [string, string] } {
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  o(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '7', '-subj', '/CN=skafe demo CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const issue = (name: string, cn: string, ext: string) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    o(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    o(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '7', '-extfile', `${name}.ext`]);
    return [path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`)] as [string, string];
  };
  return {
    ca: path.join(dir, 'ca.pem'),
    server: issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'),
    agent: issue('agent', agentName, 'extendedKeyUsage=clientAuth\n'),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

function prefixed(who: string, file: string): Logger {
  const line = (lvl: string) => (m: string) => fs.appendFileSync(file, `${new Date().toISOString()} ${who} ${lvl}${m}\n`);
  return { info: line(''), warn: line('warning: '), error: line('error: ') };
}

const countLines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['dir', 'log', 'source'], bools: ['stats'] });
  const dir = path.resolve((args.flags.get('dir') as string | undefined) ?? 'out/demo');
  const source = path.resolve((args.flags.get('source') as string | undefined) ?? path.join(pipelinesDir, 'samples', 'audit.log'));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'certs'), { recursive: true });
  const opsLog = path.resolve((args.flags.get('log') as string | undefined) ?? path.join(dir, 'skafe.log'));
  const agentName = os.hostname();
  let certs;
  try {
    certs = makeCerts(path.join(dir, 'certs'), agentName);
  } catch (e) {
    process.stderr.write(`skafe demo: making certificates with openssl failed (is openssl installed?): ${(e as Error).message.split('\n')[0]}\n`);
    return 1;
  }
  const port = await freePort();
  const serverConf = path.join(dir, 'skafe-server.conf');
  fs.writeFileSync(
    serverConf,
    [
      '# written by skafe demo: the original SKAFE keys plus skafe\'s own',
      `port = ${port}`,
      'host = 127.0.0.1',
      `tlscert = ${certs.server[0]}`,
      `tlskey = ${certs.server[1]}`,
      `tlsca = ${certs.ca}`,
      `serverlog = ${opsLog}`,
      'eventlog = events.jsonl',
      'alertlog = alerts.jsonl',
      `rulesdir = ${path.join(pipelinesDir, 'rules', 'default')}`,
      'queuedir = queue',
      'reverse_dns = off',
      '',
    ].join('\n'),
  );
  const agentConf = path.join(dir, 'skafe-agent.conf');
  fs.writeFileSync(
    agentConf,
    [
      '# written by skafe demo',
      'server = localhost',
      `port = ${port}`,
      `tlscert = ${certs.agent[0]}`,
      `tlskey = ${certs.agent[1]}`,
      `tlscac = ${certs.ca}`,
      `source = ${source}`,
      'follow = false',
      'spooldir = spool',
      '',
    ].join('\n'),
  );
  const base = (name: string) => JSON.parse(fs.readFileSync(path.join(pipelinesDir, name), 'utf8')) as PipelineDefinition;
  const server = await buildPipeline(serverDefinition(fs.readFileSync(serverConf, 'utf8'), serverConf, base('server.json')).definition, {
    file: path.join(pipelinesDir, 'server.json'),
    log: prefixed('server', opsLog),
  });
  const serverDone = server.run();
  const agent = await buildPipeline(agentDefinition(fs.readFileSync(agentConf, 'utf8'), agentConf, base('agent.json')).definition, {
    file: path.join(pipelinesDir, 'agent.json'),
    log: prefixed('agent', opsLog),
  });
  process.stderr.write(`skafe demo: server on 127.0.0.1:${port} (mutual TLS), agent "${agentName}" replaying ${source}\n`);
  const started = Date.now();
  let code = 0;
  try {
    // A finite replay ends once the server has acknowledged every event.
    await agent.run();
    // The server writes what it acknowledged; wait until both logs stop growing.
    const events = path.join(dir, 'events.jsonl');
    const alerts = path.join(dir, 'alerts.jsonl');
    let last = -1;
    for (let i = 0; i < 100; i++) {
      const n = countLines(events) + countLines(alerts);
      if (n === last && n > 0) break;
      last = n;
      await sleep(200);
    }
    server.stop();
    await serverDone;
    const secs = (Date.now() - started) / 1000;
    if (args.flags.has('stats')) process.stderr.write('agent:\n' + statsTable(agent.stages, secs) + 'server:\n' + statsTable(server.stages, secs));
    process.stderr.write(
      `skafe demo: ${countLines(events)} lines in ${path.relative(process.cwd(), events)}, ${countLines(alerts)} in ${path.relative(process.cwd(), alerts)} ` +
        `(${secs.toFixed(1)} s; operations log ${path.relative(process.cwd(), opsLog)}).\n`,
    );
  } catch (e) {
    code = 1;
    process.stderr.write(`skafe demo: ${(e as Error).message} (see ${opsLog})\n`);
    server.destroy();
  }
  return code;
}
