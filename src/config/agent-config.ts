import { openSettings } from './settings-file.js';
import path from 'node:path';
import { iniError } from './ini.js';
import { bool, int, num, bytes, seconds, oneOf } from './ini-values.js';
import type { PipelineDefinition } from '../pipeline.js';

// `skafe agent -config FILE`: the original SKAFE agent keys plus the new ones,
// written into the shipped pipelines/agent.json. Paths in the INI file resolve
// against the INI file's directory (the definition's baseDir is pipelines/).
//
// original: server, port, tls, tlscert, tlskey, tlscac (also tlsca), log
// new:      source (stdin | netlink | /path/to/audit.log), follow (for a path), name, servers (failover list),
//           spooldir, spool_max_bytes, spool_max_age, spool_when_full,
//           throttle_rate, throttle_burst, heartbeat, idle_timeout, backoff_max,
//           fetch, fetch_allow, fetch_max_bytes (what skafe.fetchFile may take from this host)

export const AGENT_KEYS = [
  'server', 'servers', 'port', 'tls', 'tlscert', 'tlskey', 'tlscac', 'tlsca', 'log', 'source', 'name',
  'spooldir', 'spool_max_bytes', 'spool_max_age', 'spool_when_full', 'throttle_rate', 'throttle_burst',
  'heartbeat', 'idle_timeout', 'backoff_max', 'status_events', 'follow', 'fetch', 'fetch_allow', 'fetch_max_bytes',
] as const;

export interface AgentSettings {
  definition: PipelineDefinition;
  /** Where the agent's own log goes: 'stderr', 'stdout' or a file. */
  log: string;
  /** The followed file when `source` is a path (for resumable input). */
  sourceFile?: string;
  spoolDir: string;
}

export function agentDefinition(text: string, file: string, base: PipelineDefinition): AgentSettings {
  const { dir, def, get, rel, stage } = openSettings(text, file, AGENT_KEYS, 'agent', base);

  // source
  const src = get('source');
  let sourceFile: string | undefined;
  const first = def.stages[0]!;
  for (const k of Object.keys(first)) delete first[k];
  if (!src || src.value === 'stdin') Object.assign(first, { use: 'stdin' });
  else if (src.value === 'netlink') Object.assign(first, { use: 'netlink' });
  else {
    sourceFile = rel(src);
    // follow = false replays the file and exits once the server acknowledged all of it.
    const follow = get('follow') ? bool(file, get('follow')!) : true;
    Object.assign(first, { use: 'file', path: sourceFile, follow });
  }

  // link
  const link = stage('tls');
  const port = get('port') ? int(file, get('port')!, 1, 65535) : 6969;
  const serverKey = get('servers') ?? get('server');
  if (!serverKey) throw iniError(file, { line: 1 }, 'missing required key "server"');
  link.servers = serverKey.value
    .split(/[,\s]+/)
    .filter(Boolean)
    .map((s) => (/:\d+$/.test(s) && !/^[^[]*:.*:/.test(s) ? s : `${s}:${port}`));
  const tls = get('tls');
  if (tls && !bool(file, tls)) {
    link.tls = false;
    delete link.cert;
    delete link.key;
    delete link.ca;
  } else {
    if (get('tlscert')) link.cert = rel(get('tlscert')!);
    if (get('tlskey')) link.key = rel(get('tlskey')!);
    const ca = get('tlscac') ?? get('tlsca');
    if (ca) link.ca = rel(ca);
  }
  if (get('name')) link.name = get('name')!.value;
  if (get('heartbeat')) link.heartbeat = seconds(file, get('heartbeat')!);
  if (get('idle_timeout')) link.idle_timeout = seconds(file, get('idle_timeout')!);
  if (get('backoff_max')) link.backoff_max = seconds(file, get('backoff_max')!);
  if (get('fetch')) link.fetch = bool(file, get('fetch')!);
  const allow = get('fetch_allow');
  if (allow) {
    const paths = allow.value.split(/[,\s]+/).filter(Boolean);
    const bad = paths.find((p) => !path.isAbsolute(p));
    if (bad !== undefined) throw iniError(file, allow, `"${bad}" is not an absolute path`);
    link.fetch_allow = paths;
  }
  if (get('fetch_max_bytes')) {
    const n = bytes(file, get('fetch_max_bytes')!);
    if (n > 15 * 1024 * 1024) throw iniError(file, get('fetch_max_bytes')!, 'at most 15M (the link carries a file in one frame of at most 16 MiB)');
    link.fetch_max_bytes = n;
  }

  // spool
  const spool = stage('spool');
  if (get('spooldir')) spool.dir = rel(get('spooldir')!);
  if (get('spool_max_bytes')) spool.max_bytes = bytes(file, get('spool_max_bytes')!);
  if (get('spool_max_age')) spool.max_age = seconds(file, get('spool_max_age')!);
  if (get('spool_when_full')) spool.when_full = oneOf(file, get('spool_when_full')!, ['block', 'drop_oldest'] as const);
  if (get('status_events')) spool.status_events = bool(file, get('status_events')!);
  if (sourceFile) spool.resumable = true;

  // throttle
  const th = def.stages.find((x) => x.use === 'throttle');
  if (th) {
    if (get('throttle_rate')) th.rate = num(file, get('throttle_rate')!, 1);
    if (get('throttle_burst')) th.burst = num(file, get('throttle_burst')!, 1);
    else if (get('throttle_rate')) th.burst = th.rate;
  }

  const log = get('log')?.value ?? 'stderr';
  return { definition: def, log: log === 'stdout' || log === 'stderr' || log === 'syslog' ? log : path.resolve(dir, log), sourceFile, spoolDir: path.resolve(dir, String(spool.dir)) };
}
