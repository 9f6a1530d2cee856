import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Real certificates for link tests, made with the openssl CLI in a temp dir:
// a CA, a server cert for localhost/127.0.0.1, and client certs good and bad.
// `openssl ca` is used throughout because it takes explicit start/end dates
// (OpenSSL 3.0's `x509` has no -not_before), which expired/not-yet-valid need.

export interface Pair {
  cert: string;
  key: string;
}
export interface CertSet {
  dir: string;
  ca: string;
  server: Pair;
  /** Server cert whose names are not localhost/127.0.0.1. */
  serverWrongName: Pair;
  client: Pair;
  /** Second good client (another agent). */
  client2: Pair;
  otherCa: string;
  clientOtherCa: Pair;
  clientSelfSigned: Pair;
  clientExpired: Pair;
  clientNotYetValid: Pair;
  clientNoClientAuth: Pair;
  /** Server cert signed by the other CA (agent must refuse). */
  serverOtherCa: Pair;
}

const ossl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

function makeCa(dir: string, name: string): { cert: string; key: string; cnf: string } {
  const d = path.join(dir, name);
  fs.mkdirSync(path.join(d, 'new'), { recursive: true });
  fs.writeFileSync(path.join(d, 'index.txt'), '');
  fs.writeFileSync(path.join(d, 'serial'), '1000\n');
  const cnf = path.join(d, 'ca.cnf');
  fs.writeFileSync(
    cnf,
    `[ca]\ndefault_ca = c\n[c]\ndatabase = ${d}/index.txt\nnew_certs_dir = ${d}/new\nserial = ${d}/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\n[p]\ncommonName = supplied\n`,
  );
  const key = path.join(d, 'ca.key');
  const cert = path.join(d, 'ca.pem');
  ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key, cnf };
}

function issue(dir: string, ca: { cert: string; key: string; cnf: string }, name: string, cn: string, ext: string, from: Date, to: Date): Pair {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  fs.writeFileSync(extFile, `[e]\n${ext}\n`);
  ossl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
  ossl(dir, ['ca', '-batch', '-config', ca.cnf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert, '-notext', '-startdate', stamp(from), '-enddate', stamp(to), '-extfile', extFile, '-extensions', 'e']);
  return { cert, key };
}

export function makeCerts(prefix = 'skafe-certs-'): CertSet {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const now = Date.now();
  const past = new Date(now - 86400_000);
  const future = new Date(now + 10 * 86400_000);
  const ca = makeCa(dir, 'ca');
  const other = makeCa(dir, 'otherca');
  const server = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1';
  const client = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth';
  const selfKey = path.join(dir, 'self.key');
  const selfCert = path.join(dir, 'self.pem');
  ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', selfKey, '-out', selfCert, '-days', '5', '-subj', '/CN=agent-self', '-addext', 'extendedKeyUsage=clientAuth']);
  return {
    dir,
    ca: ca.cert,
    otherCa: other.cert,
    server: issue(dir, ca, 'server', 'localhost', server, past, future),
    serverWrongName: issue(dir, ca, 'server-wrong', 'elsewhere.example', server.replace('DNS:localhost,IP:127.0.0.1', 'DNS:elsewhere.example'), past, future),
    serverOtherCa: issue(dir, other, 'server-other', 'localhost', server, past, future),
    client: issue(dir, ca, 'client', 'agent-1', client, past, future),
    client2: issue(dir, ca, 'client2', 'agent-2', client, past, future),
    clientOtherCa: issue(dir, other, 'client-other', 'agent-other', client, past, future),
    clientSelfSigned: { cert: selfCert, key: selfKey },
    clientExpired: issue(dir, ca, 'client-expired', 'agent-expired', client, new Date(now - 10 * 86400_000), new Date(now - 86400_000)),
    clientNotYetValid: issue(dir, ca, 'client-future', 'agent-future', client, new Date(now + 86400_000), future),
    clientNoClientAuth: issue(dir, ca, 'client-noauth', 'agent-noauth', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth', past, future),
  };
}
