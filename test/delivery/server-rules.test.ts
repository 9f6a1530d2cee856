// skafe server with rules: listen → queue → server-enrich → rules → fanout(event log, alert log).
// Every event the tree logs reaches the event log once, alerts reach the alert log, and the
// queue releases what both logs wrote (a restart finds nothing unreleased to write again).
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildPipeline, loadDefinition } from '../../src/pipeline.js';
import { serverDefinition } from '../../src/config/server-config.js';
import { makeCerts } from '../helpers/certs.js';
import { fixtures, need, repoRoot } from '../helpers/env.js';
import { memoryLogger, readEventLog } from '../helpers/delivery.js';
import { isStatusEvent } from '../../src/link/status.js';
import type { ListenSource } from '../../src/sources/listen.js';

t.test('rules on the server: event log and alert log fed through the fan-out, queue released', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const certs = makeCerts();
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-server-rules-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'rules'));
  fs.writeFileSync(
    path.join(dir, 'rules', 'test.rules'),
    '[all]\nwatch = base\naction = match\ntrigger = log\nmatch_event.id = .\n\n[rootexec]\nwatch = all\naction = match\ntrigger = alert\nmatch_user.name = ^root$\nmatch_auditd.data.syscall = ^execve$\n',
  );
  const net = await import('node:net');
  const freePort = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const conf = path.join(dir, 'server.conf');
  fs.writeFileSync(
    conf,
    [`port = ${freePort}`, `host = 127.0.0.1`, `tlscert = ${certs.server.cert}`, `tlskey = ${certs.server.key}`, `tlsca = ${certs.ca}`, `queuedir = queue`, `rulesdir = rules`, `eventlog = events.jsonl`, `alertlog = alerts.jsonl`, `reverse_dns = off`, ''].join('\n'),
  );
  const settings = serverDefinition(fs.readFileSync(conf, 'utf8'), conf, loadDefinition(path.join(repoRoot, 'pipelines', 'server.json')));
  t.ok(settings.definition.stages.some((s) => s.use === 'rules'), 'rulesdir puts the rules stage in');
  const start = async () => {
    const log = memoryLogger();
    const p = await buildPipeline(settings.definition, { log, file: conf });
    const port = (p.services.get('listen') as ListenSource).address().port;
    return { p, port, log, done: p.run() };
  };
  const server = await start();
  const agent = await buildPipeline(
    {
      stages: [
        { use: 'file', path: fixtures('dev-1', 'audit.log') },
        { use: 'coalesce' },
        { use: 'spool', dir: path.join(dir, 'spool') },
        { use: 'tls', servers: [`127.0.0.1:${server.port}`], cert: certs.client.cert, key: certs.client.key, ca: certs.ca },
      ],
    } as never,
    { log: memoryLogger() },
  );
  await agent.run();
  const expected = readEventLog(fixtures('dev-1', 'expected.jsonl')).length - 1; // libauparse splits one event
  const events = () => readEventLog(path.join(dir, 'events.jsonl')).filter((e) => !isStatusEvent(e));
  for (let i = 0; i < 200 && events().length < expected; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  server.p.stop();
  await server.done;
  const logged = events();
  const ids = logged.map((e) => e.event.id);
  t.equal(ids.length, new Set(ids).size, 'each event once in the event log');
  t.equal(ids.length, expected, 'every event logged (rule "all")');
  t.ok(logged.every((e) => e.rule.name === 'all' && e.event.kind === 'event'), 'lines carry rule.name and event.kind');
  const alerts = readEventLog(path.join(dir, 'alerts.jsonl'));
  t.ok(alerts.length > 10, `${alerts.length} alerts`);
  t.ok(alerts.every((e) => e.rule.name === 'rootexec' && e.event.kind === 'alert' && e.auditd.data.syscall === 'execve' && e.user.name === 'root'));
  // A restart on the same queue: nothing was left unreleased, so nothing is written again.
  const sizeBefore = fs.statSync(path.join(dir, 'events.jsonl')).size;
  const again = await start();
  await new Promise((r) => setTimeout(r, 500));
  again.p.stop();
  await again.done;
  t.notOk(again.log.lines.some((l) => /unreleased/.test(l)), `no unreleased batches at restart: ${again.log.lines.filter((l) => /unreleased|cut/.test(l)).join(' | ')}`);
  t.equal(fs.statSync(path.join(dir, 'events.jsonl')).size, sizeBefore, 'event log unchanged by the restart');
});
