// The original SKAFE event was a flat map (`uname`, `bin`, `a0` …); skafe's
// events are ECS objects. `match_<alias>` keeps old rules working: each alias
// names the ECS paths it reads, first present wins. docs/rules.md lists this
// table; keep the two in step. A `join:` path reads an array as its elements
// joined by spaces (the original `cmd` was the command line as one string).

export const ALIASES: Readonly<Record<string, readonly string[]>> = {
  uname: ['user.name'],
  uid: ['user.id'],
  auid: ['user.audit.id'],
  auname: ['user.audit.name'],
  euid: ['user.effective.id'],
  gid: ['user.group.id'],
  pid: ['process.pid'],
  ppid: ['process.parent.pid', 'process.ppid'],
  bin: ['process.executable'],
  exe: ['process.executable'],
  comm: ['process.name'],
  cmd: ['process.command_line', 'process.title', 'join:process.args'],
  proctitle: ['process.title'],
  argc: ['process.args_count', 'auditd.data.argc'],
  key: ['tags'],
  ses: ['auditd.session'],
  res: ['auditd.result', 'event.outcome'],
  success: ['event.outcome'],
  cwd: ['process.working_directory'],
  syscall: ['auditd.data.syscall'],
  exit: ['auditd.data.exit'],
  tty: ['process.tty', 'auditd.data.tty'],
  arch: ['auditd.data.arch'],
  path: ['file.path'],
  host: ['host.name'],
  hostname: ['host.name'],
  agent: ['agent.name'],
  type: ['event.action'],
  id: ['event.id'],
};

/**
 * The ECS paths a `match_` key reads. Dotted keys are paths as written; a flat
 * key is an alias when the table has it, `aN` is the Nth execve argument (the
 * original `a0 = tail`), and any other flat key is a top-level field.
 */
export function resolveKey(key: string): string[] {
  if (key.includes('.')) return [key];
  const alias = ALIASES[key];
  if (alias) return [...alias];
  const arg = /^a(\d+)$/.exec(key);
  if (arg) return [`process.args.${arg[1]}`];
  return [key];
}
