import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import syslogStage from '../../src/sinks/syslog.js';
import { StageCounters, type StageContext } from '../../src/stage.js';
import { need } from '../helpers/env.js';

// A real rsyslogd with a private config: a unix datagram socket (what
// /dev/log is), a TCP and a UDP listener on loopback, everything written to
// one file with the RFC 5424 fields separated by `|`; and a unix stream socket (imptcp).

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function ctx(): StageContext {
  return {
    baseDir: process.cwd(),
    index: 3,
    name: 'stage 4 (syslog)',
    counters: new StageCounters(),
    log: { info() {}, warn() {}, error() {} },
    signal: new AbortController().signal,
    problem() {},
    services: new Map(),
  };
}

async function waitFor(file: string, lines: number, ms = 10000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const got = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    if (got.length >= lines || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A private rsyslogd in `dir`: the given global() settings and inputs, every
 * message written to one file (the RFC 5424 fields separated by `|`).
 */
function startRsyslogd(t: { teardown(f: () => void): void }, dir: string, inputs: string, globals = ''): { out: string; stderr: () => string } {
  const out = path.join(dir, 'out.log');
  fs.writeFileSync(
    path.join(dir, 'rsyslog.conf'),
    `global(workDirectory="${dir}" maxMessageSize="64k"${globals ? `\n  ${globals}` : ''})
${inputs}
template(name="fields" type="string" string="%inputname%|%pri%|%protocol-version%|%app-name%|%msgid%|%structured-data%|%msg%\\n")
*.* action(type="omfile" file="${out}" template="fields")
`,
  );
  const rs = spawn('rsyslogd', ['-n', '-f', path.join(dir, 'rsyslog.conf'), '-i', path.join(dir, 'rsyslog.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  rs.stderr.on('data', (d) => (err += d));
  t.teardown(() => {
    rs.kill('SIGTERM');
  });
  return { out, stderr: () => err };
}

t.test('syslog sink → real rsyslogd over /dev/log-style socket, TCP, UDP and a unix stream socket', async (t) => {
  if (!need(t as never, { tool: 'rsyslogd' }) || !need(t as never, { tool: 'logger' })) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-syslog-'));
  const tcp = await freePort();
  const udp = await freePort();
  const { out, stderr } = startRsyslogd(
    t,
    dir,
    `module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${dir}/log" UseSpecialParser="off" ParseHostname="on")
module(load="imtcp")
input(type="imtcp" port="${tcp}" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="${udp}" address="127.0.0.1")
module(load="imptcp")
input(type="imptcp" path="${dir}/stream" unlink="on")`,
  );
  // Ready when its socket exists and the TCP port accepts.
  for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'log')); i++) await new Promise((r) => setTimeout(r, 100));
  t.ok(fs.existsSync(path.join(dir, 'log')), `rsyslogd listening ${stderr()}`);

  const item = (n: number, kind: string) => ({
    '@timestamp': '2024-01-01T00:00:00.000Z',
    event: { id: `1.0:${n}`, kind },
    process: { executable: '/usr/bin/tail', args: ['tail', 'a "quoted" \\ arg', 'ünïcödé'] },
    rule: { name: 'MatchRule.test', ruleset: 'test.rules' },
  });
  const transports = [
    { transport: 'local', path: path.join(dir, 'log') },
    { transport: 'tcp', host: '127.0.0.1', port: tcp },
    { transport: 'udp', host: '127.0.0.1', port: udp },
    { transport: 'unix', path: path.join(dir, 'stream') },
  ] as const;
  let sent = 0;
  for (const opts of transports) {
    const sink = await syslogStage.create({ ...opts, facility: 'local3', appname: 'skafe-test' }, ctx());
    const items = [item(sent++, 'event'), item(sent++, 'alert')];
    await pipeline(Readable.from([items]), sink as NodeJS.WritableStream);
  }
  const lines = await waitFor(out, sent);
  t.equal(lines.length, sent, `all ${sent} messages arrived: ${stderr()}`);
  for (const [i, line] of lines.entries()) {
    const [input, pri, ver, app, msgid, sd, ...rest] = line.split('|');
    const body = JSON.parse(rest.join('|').trim());
    t.same(body, item(body.event.id.split(':')[1] * 1, body.event.kind), `${input}: JSON body intact`);
    t.equal(app, 'skafe-test', `${input}: APP-NAME`);
    t.equal(ver, '1', `${input}: RFC 5424`);
    const sev = body.event.kind === 'alert' ? 4 : 6;
    t.equal(Number(pri), 19 * 8 + sev, `${input}: facility local3, severity by event.kind`);
    if (input !== 'imuxsock') {
      t.equal(msgid, body.event.kind, `${input}: MSGID`);
      t.equal(sd, '[skafe@32473 rule="MatchRule.test"]', `${input}: structured data`);
    }
    void i;
  }
  t.same(new Set(lines.map((l) => l.split('|')[0])), new Set(['imuxsock', 'imtcp', 'imudp', 'imptcp']));
});

t.test('syslog sink → real rsyslogd over TLS (RFC 5425), the server checking our client certificate', async (t) => {
  if (!need(t as never, { tool: 'rsyslogd' }) || !need(t as never, { tool: 'openssl' })) return;
  const gtls = ['/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so', '/usr/lib/rsyslog/lmnsd_gtls.so'].some((f) => fs.existsSync(f));
  if (!gtls) {
    // rsyslog-gnutls is installed by test/setup-system.sh; under CI a skip is a failure
    if (process.env.CI === 'true') t.fail('rsyslog-gnutls (lmnsd_gtls.so) is not installed');
    else (t as unknown as { skip(m: string): void }).skip('rsyslog-gnutls (lmnsd_gtls.so) is not installed');
    return;
  }
  const { makeCerts } = await import('../helpers/certs.js');
  const certs = makeCerts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-syslog-tls-'));
  t.teardown(() => {
    fs.rmSync(certs.dir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = await freePort();
  const { out, stderr } = startRsyslogd(
    t,
    dir,
    `module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" port="${port}" address="127.0.0.1")`,
    `DefaultNetstreamDriverCAFile="${certs.ca}" DefaultNetstreamDriverCertFile="${certs.server.cert}" DefaultNetstreamDriverKeyFile="${certs.server.key}"`,
  );
  // Ready when the port accepts.
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(up, `rsyslogd listening with TLS ${stderr()}`);
  const items = [1, 2, 3].map((n) => ({
    '@timestamp': '2024-01-01T00:00:00.000Z',
    event: { id: `2.0:${n}`, kind: n === 2 ? 'alert' : 'event' },
    process: { executable: '/usr/bin/tail', args: ['tail', 'a "quoted" \\ arg', 'ünïcödé', 'x'.repeat(3000)] },
    rule: { name: 'MatchRule.test', ruleset: 'test.rules' },
  }));
  const sink = await syslogStage.create(
    { transport: 'tls', host: '127.0.0.1', port, ca: certs.ca, cert: certs.client.cert, key: certs.client.key, servername: 'localhost', facility: 'local3', appname: 'skafe-test' },
    ctx(),
  );
  await pipeline(Readable.from([items]), sink as NodeJS.WritableStream);
  const lines = await waitFor(out, items.length);
  t.equal(lines.length, items.length, `all ${items.length} messages arrived over TLS: ${stderr()}`);
  for (const line of lines) {
    const [input, pri, ver, app, msgid, sd, ...rest] = line.split('|');
    const body = JSON.parse(rest.join('|').trim());
    const want = items.find((i) => i.event.id === body.event.id);
    t.same(body, want, 'JSON body intact, a 3 KB argument included');
    t.same([input, ver, app, msgid, sd], ['imtcp', '1', 'skafe-test', body.event.kind, '[skafe@32473 rule="MatchRule.test"]'], 'RFC 5424 header and structured data');
    t.equal(Number(pri), 19 * 8 + (body.event.kind === 'alert' ? 4 : 6), 'facility and severity');
  }
});
