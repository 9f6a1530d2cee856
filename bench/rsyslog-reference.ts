// The reference for the delivery bench: the same JSON lines forwarded by rsyslog
// (imfile → omfwd over TLS with x509/certvalid mutual auth, disk-assisted action
// queue) to a second rsyslogd (imtcp TLS → omfile). Two private rsyslogd
// processes with their own configs, pid files and work dirs; never the system one.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { CertSet } from '../test/helpers/certs.js';

export interface RsyslogResult {
  lines: number;
  seconds: number;
  eventsPerSecond: number;
}

async function freePort(): Promise<number> {
  return new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
}

const countLines = (f: string) => {
  try {
    const b = fs.readFileSync(f);
    let n = 0;
    for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
};

export async function rsyslogReference(o: { work: string; certs: CertSet; templates: string; lines: number }): Promise<RsyslogResult> {
  execFileSync('sh', ['-c', 'command -v rsyslogd'], { stdio: 'pipe' });
  const dir = path.join(o.work, 'rsyslog');
  for (const d of ['recv', 'send']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const port = await freePort();
  const out = path.join(dir, 'received.log');
  const input = path.join(dir, 'lines.txt');
  const tpl = fs.readFileSync(o.templates, 'utf8').split('\n').filter(Boolean);
  const fd = fs.openSync(input, 'w');
  let chunk = '';
  for (let i = 0; i < o.lines; i++) {
    chunk += tpl[i % tpl.length]!.replace('"event":{', `"event":{"n":${i},`) + '\n';
    if (chunk.length > 1 << 20) (fs.writeSync(fd, chunk), (chunk = ''));
  }
  fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  const c = o.certs;
  const recv = `global(workDirectory="${dir}/recv" maxMessageSize="64k" defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${c.ca}" defaultNetstreamDriverCertFile="${c.server.cert}" defaultNetstreamDriverKeyFile="${c.server.key}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imtcp" port="${port}" address="127.0.0.1")
template(name="msgonly" type="string" string="%msg%\\n")
action(type="omfile" file="${out}" template="msgonly")
`;
  const send = `global(workDirectory="${dir}/send" maxMessageSize="64k" defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${c.ca}" defaultNetstreamDriverCertFile="${c.client.cert}" defaultNetstreamDriverKeyFile="${c.client.key}")
module(load="imfile" mode="inotify")
input(type="imfile" file="${input}" tag="skafe:" reopenOnTruncate="on")
action(type="omfwd" target="127.0.0.1" port="${port}" protocol="tcp" streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/certvalid"
  queue.type="LinkedList" queue.filename="fwdq" queue.saveOnShutdown="on" queue.size="100000" action.resumeRetryCount="-1")
`;
  fs.writeFileSync(path.join(dir, 'recv.conf'), recv);
  fs.writeFileSync(path.join(dir, 'send.conf'), send);
  const procs: ChildProcess[] = [];
  const start = (name: string) => {
    const p = spawn('rsyslogd', ['-n', '-f', path.join(dir, `${name}.conf`), '-i', path.join(dir, `${name}.pid`)], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d) => fs.appendFileSync(path.join(dir, 'rsyslog.err'), d));
    procs.push(p);
  };
  try {
    start('recv');
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    start('send');
    const deadline = Date.now() + 180_000;
    let n = 0;
    while ((n = countLines(out)) < o.lines && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const seconds = (performance.now() - t0) / 1000;
    if (n < o.lines) throw new Error(`rsyslog delivered ${n}/${o.lines} lines in 180 s (see ${dir}/rsyslog.err)`);
    return { lines: n, seconds, eventsPerSecond: n / seconds };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
  }
}
