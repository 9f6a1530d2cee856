import type { StageSpec } from '../pipeline.js';

// The original server config keys → stage specs, for `skafe server -config`:
// `rulesdir`/`scriptsdir`/`workers` make the rules stage; `eventlog` and
// `alertlog` each name a file path, `stdout`, `stderr` or `syslog`; items go to
// the event log when `event.kind` is `event`, to the alert log when `alert`.

export interface ServerRuleKeys {
  rulesdir: string;
  scriptsdir?: string | undefined;
  workers?: number | undefined;
  eventlog?: string | undefined;
  alertlog?: string | undefined;
}

/** `stdout`, `stderr`, `syslog` or a file path → the sink spec (relative paths against the config file's directory, by the pipeline). */
export function logSinkSpec(value: string): StageSpec {
  if (value === 'stdout' || value === 'stderr') return { use: value };
  if (value === 'syslog') return { use: 'syslog' };
  return { use: 'jsonl', path: value };
}

/**
 * The rules stage and the fan-out that routes its items to the event and alert
 * logs: append these after the server's queue stage. Defaults as in the
 * original: eventlog stdout, alertlog stderr.
 */
export function rulesStages(k: ServerRuleKeys): StageSpec[] {
  const rules: StageSpec = { use: 'rules', rulesdir: k.rulesdir };
  if (k.scriptsdir !== undefined) rules.scriptsdir = k.scriptsdir;
  if (k.workers !== undefined) rules.workers = k.workers;
  const branch = (kind: 'event' | 'alert', sink: string): StageSpec[] => [{ use: 'filter', where: { 'event.kind': `^${kind}$` } }, logSinkSpec(sink)];
  return [rules, { use: 'fanout', branches: [branch('event', k.eventlog ?? 'stdout'), branch('alert', k.alertlog ?? 'stderr')] } as unknown as StageSpec];
}
