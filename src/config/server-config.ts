import { openSettings } from './settings-file.js';
import path from 'node:path';
import { rulesStages } from '../rules/server-keys.js';
import { bool, int, bytes, oneOf } from './ini-values.js';
import type { PipelineDefinition, StageSpec } from '../pipeline.js';

// `skafe server -config FILE`: the original SKAFE server keys plus the new ones,
// written into the shipped pipelines/server.json.
//
// original: port (6969), tls, tlscert, tlskey, tlsca, serverlog, eventlog (stdout),
//           alertlog, rulesdir (read by the rules stage when it is wired in)
// new:      host, queuedir, queue_max_bytes, credits, reverse_dns, eventlog_fsync

export const SERVER_KEYS = [
  'port', 'host', 'tls', 'tlscert', 'tlskey', 'tlsca', 'serverlog', 'eventlog', 'alertlog', 'rulesdir', 'scriptsdir', 'workers',
  'queuedir', 'queue_max_bytes', 'credits', 'reverse_dns', 'eventlog_fsync', 'status_events',
] as const;

export interface ServerSettings {
  definition: PipelineDefinition;
  log: string;
}

export function serverDefinition(text: string, file: string, base: PipelineDefinition): ServerSettings {
  const { dir, def, get, rel, stage } = openSettings(text, file, SERVER_KEYS, 'server', base);

  const listen = stage('listen');
  listen.port = get('port') ? int(file, get('port')!, 1, 65535) : 6969;
  if (get('host')) listen.host = get('host')!.value;
  const tls = get('tls');
  if (tls && !bool(file, tls)) {
    listen.tls = false;
    delete listen.cert;
    delete listen.key;
    delete listen.ca;
  } else {
    if (get('tlscert')) listen.cert = rel(get('tlscert')!);
    if (get('tlskey')) listen.key = rel(get('tlskey')!);
    if (get('tlsca')) listen.ca = rel(get('tlsca')!);
  }
  if (get('credits')) listen.credits = int(file, get('credits')!, 1, 100000);
  if (get('status_events')) listen.status_events = bool(file, get('status_events')!);

  const queue = stage('queue');
  if (get('queuedir')) queue.dir = rel(get('queuedir')!);
  if (get('queue_max_bytes')) queue.max_bytes = bytes(file, get('queue_max_bytes')!);

  const enrich = def.stages.find((x) => x.use === 'server-enrich');
  if (enrich && get('reverse_dns')) enrich.reverse_dns = oneOf(file, get('reverse_dns')!, ['auto', 'on', 'off'] as const);

  // Event log: with no rules configured, every event goes here.
  const ev = get('eventlog');
  const last = def.stages.length - 1;
  if (ev) {
    if (ev.value === 'stdout' || ev.value === 'stderr') def.stages[last] = { use: ev.value };
    else if (ev.value === 'syslog') def.stages[last] = { use: 'syslog' };
    else {
      def.stages[last] = { use: 'jsonl', path: rel(ev), ...(get('eventlog_fsync') && bool(file, get('eventlog_fsync')!) ? { fsync: true } : {}) };
      queue.sink_files = [rel(ev)];
    }
  }
  // With rules: the tree decides what goes to the event log and what to the alert log.
  const rulesdir = get('rulesdir');
  if (rulesdir) {
    const al = get('alertlog');
    const logValue = (e: typeof ev) => (e === undefined ? undefined : e.value === 'stdout' || e.value === 'stderr' || e.value === 'syslog' ? e.value : rel(e));
    const scriptsdir = get('scriptsdir');
    const workers = get('workers');
    def.stages.splice(
      last,
      1,
      ...rulesStages({
        rulesdir: rel(rulesdir),
        scriptsdir: scriptsdir ? rel(scriptsdir) : undefined,
        workers: workers ? int(file, workers, 0, 64) : undefined,
        eventlog: logValue(ev),
        alertlog: logValue(al),
      }),
    );
    if (get('eventlog_fsync') && bool(file, get('eventlog_fsync')!)) {
      for (const b of (def.stages.at(-1) as unknown as { branches: StageSpec[][] }).branches) for (const st of b) if (st.use === 'jsonl') st.fsync = true;
    }
    queue.sink_files = [logValue(ev), logValue(al)].filter((v): v is string => v !== undefined && v !== 'stdout' && v !== 'stderr' && v !== 'syslog');
  }
  const log = get('serverlog')?.value ?? 'stderr';
  return { definition: def, log: log === 'stdout' || log === 'stderr' || log === 'syslog' ? log : path.resolve(dir, log) };
}
