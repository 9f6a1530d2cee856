// execArgv for every worker thread skafe starts. Empty, not the parent's: the
// parent's flags (a test runner's loaders, --max-semi-space-size meant for the
// main thread) are not for workers. SKAFE_WORKER_CPU_PROF=DIR writes a V8 CPU
// profile of each worker into DIR when it exits, the only way to see inside
// coalesce's and the rule engine's threads (docs/architecture.md).
export function workerExecArgv(): string[] {
  const dir = process.env.SKAFE_WORKER_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}
