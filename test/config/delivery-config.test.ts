import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { skafeBin, repoRoot } from '../helpers/env.js';
import { validateDefinition } from '../../src/pipeline.js';

// `skafe agent|server -config FILE` fill the shipped definitions from the
// original SKAFE INI keys; the result is a valid definition `skafe run` accepts.

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-conf-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};
const printed = (cmd: string, flag: string, file: string) =>
  JSON.parse(execFileSync(process.execPath, [skafeBin, cmd, flag, file, '--print-definition'], { encoding: 'utf8' }));

t.test('shipped definitions are valid', async (t) => {
  for (const f of ['agent.json', 'server.json']) {
    t.doesNotThrow(() => validateDefinition(JSON.parse(fs.readFileSync(path.join(repoRoot, 'pipelines', f), 'utf8')), f), f);
  }
});

t.test('agent: original keys, new keys, and -config / -conf / --config', async (t) => {
  const conf = write(
    'agent.conf',
    ['# original keys', 'server = skafe-server.local', 'port = 9999', 'tls = true', 'tlscert = certs/agent.pem', 'tlskey = certs/agent.key', 'tlscac = certs/ca.pem', 'log = stdout', '[]', 'spooldir = /var/tmp/spool', 'spool_max_bytes = 2G', 'spool_when_full = drop_oldest', 'throttle_rate = 5000', 'source = /var/log/audit/audit.log'].join('\n'),
  );
  for (const flag of ['-config', '-conf', '--config']) {
    const def = printed('agent', flag, conf);
    validateDefinition(def, 'printed');
    const tls = def.stages.find((s: { use: string }) => s.use === 'tls');
    t.same(tls.servers, ['skafe-server.local:9999'], `${flag}: server and port`);
    t.equal(tls.cert, path.join(dir, 'certs/agent.pem'), 'paths resolve against the config file');
    t.equal(tls.ca, path.join(dir, 'certs/ca.pem'), 'tlscac is the server CA');
    const spool = def.stages.find((s: { use: string }) => s.use === 'spool');
    t.same([spool.dir, spool.max_bytes, spool.when_full], ['/var/tmp/spool', 2 * 1024 ** 3, 'drop_oldest']);
    t.equal(def.stages.find((s: { use: string }) => s.use === 'throttle').rate, 5000);
    t.same(def.stages[0], { use: 'file', path: '/var/log/audit/audit.log', follow: true });
  }
  const stdinConf = write('agent2.conf', 'server = a, b:7000\n');
  const def = printed('agent', '-config', stdinConf);
  t.equal(def.stages[0].use, 'stdin', 'source defaults to stdin (the auditd plugin mode)');
  t.same(def.stages.find((s: { use: string }) => s.use === 'tls').servers, ['a:6969', 'b:7000'], 'failover list');
  const auditor = JSON.parse(execFileSync(process.execPath, [skafeBin, 'agent', '-config', stdinConf, '-auditor', '--print-definition'], { encoding: 'utf8' }));
  t.equal(auditor.stages[0].use, 'netlink', '-auditor = source netlink');
  const plain = printed('agent', '-config', write('agent3.conf', 'server = a\ntls = false\n'));
  const link = plain.stages.find((s: { use: string }) => s.use === 'tls');
  t.equal(link.tls, false, 'plaintext only when asked');
  t.notOk('cert' in link);
  const fetch = printed('agent', '-config', write('agent4.conf', 'server = a\nfetch_allow = /opt/tools/, /usr/local/bin/x\nfetch_max_bytes = 2M\n'));
  const fl = fetch.stages.find((s: { use: string }) => s.use === 'tls');
  t.same([fl.fetch_allow, fl.fetch_max_bytes], [['/opt/tools/', '/usr/local/bin/x'], 2 * 1024 ** 2], 'fetch_allow and fetch_max_bytes for skafe.fetchFile');
  t.equal(printed('agent', '-config', write('agent5.conf', 'server = a\nfetch = false\n')).stages.find((s: { use: string }) => s.use === 'tls').fetch, false, 'fetch = false');
});

t.test('server: original keys, eventlog, queuedir, defaults', async (t) => {
  const def = printed('server', '-config', write('server.conf', ['port = 6970', 'tlscert = s.pem', 'tlskey = s.key', 'tlsca = ca.pem', 'queuedir = q', 'eventlog = /var/log/skafe/events.log', 'credits = 16'].join('\n')));
  validateDefinition(def, 'printed');
  const listen = def.stages[0];
  t.same([listen.use, listen.port, listen.cert, listen.ca, listen.credits], ['listen', 6970, path.join(dir, 's.pem'), path.join(dir, 'ca.pem'), 16]);
  t.equal(def.stages[1].dir, path.join(dir, 'q'));
  t.same(def.stages.at(-1), { use: 'jsonl', path: '/var/log/skafe/events.log' }, 'eventlog file');
  t.same(def.stages[1].sink_files, ['/var/log/skafe/events.log'], 'the queue guards the event log');
  const dflt = printed('server', '--config', write('server2.conf', 'tlscert = s.pem\ntlskey = s.key\ntlsca = ca.pem\n'));
  t.equal(dflt.stages[0].port, 6969, 'port defaults to 6969');
  t.same(dflt.stages.at(-1), { use: 'stdout' }, 'eventlog defaults to stdout');
});

t.test('server with rules: the original serverlog/eventlog/alertlog/rulesdir keys (plus scriptsdir, workers)', async (t) => {
  const def = printed(
    'server',
    '-conf',
    write('server3.conf', ['tlscert = s.pem', 'tlskey = s.key', 'tlsca = ca.pem', 'serverlog = stdout', 'eventlog = events.log', 'alertlog = syslog', 'rulesdir = rules', 'scriptsdir = scripts', 'workers = 2'].join('\n')),
  );
  validateDefinition(def, 'printed');
  const rules = def.stages.find((s: { use: string }) => s.use === 'rules');
  t.same([rules.rulesdir, rules.scriptsdir, rules.workers], [path.join(dir, 'rules'), path.join(dir, 'scripts'), 2]);
  const fan = def.stages.at(-1);
  t.equal(fan.use, 'fanout');
  t.same(fan.branches.map((b: Array<{ use: string; path?: string }>) => b.at(-1)), [{ use: 'jsonl', path: path.join(dir, 'events.log') }, { use: 'syslog' }], 'event log to a file, alerts to syslog');
  t.same(def.stages[1].sink_files, [path.join(dir, 'events.log')]);
  const sys = printed('server', '-config', write('server4.conf', 'tlscert = s.pem\ntlskey = s.key\ntlsca = ca.pem\neventlog = syslog\n'));
  t.same(sys.stages.at(-1), { use: 'syslog' }, 'eventlog = syslog without rules');
});

t.test('bad values name the file and line', async (t) => {
  for (const [text, re] of [
    ['server = a\nport = 70000\n', /agent-bad\.conf:2: port: expected an integer/],
    ['server = a\nbogus = 1\n', /agent-bad\.conf:2: bogus: unknown key/],
    ['port = 1\n', /missing required key "server"/],
    ['server = a\ntls = maybe\n', /agent-bad\.conf:2: tls: expected true or false/],
    ['server = a\nfetch_allow = /ok, tools/\n', /agent-bad\.conf:2: fetch_allow: "tools\/" is not an absolute path/],
    ['server = a\n\nfetch_max_bytes = 1G\n', /agent-bad\.conf:3: fetch_max_bytes: at most 15M/],
  ] as const) {
    const r = spawnSync(process.execPath, [skafeBin, 'agent', '-config', write('agent-bad.conf', text), '--print-definition'], { encoding: 'utf8' });
    t.equal(r.status, 2, 'exit 2');
    t.match(r.stderr, re);
  }
});
