import { loadDefinition, buildPipeline } from '../../pipeline.js';
import { parseArgs } from '../args.js';
import { Progress, statsTable } from '../progress.js';

export const summary = 'run a pipeline definition file (skafe run FILE [--stats] [--quiet])';

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { bools: ['stats', 'quiet', 'progress', 'no-progress'] });
  if (args.positional.length !== 1) {
    process.stderr.write('usage: skafe run FILE [--stats] [--quiet] [--no-progress]\n');
    return 2;
  }
  const file = args.positional[0]!;
  const def = loadDefinition(file);
  const pipeline = await buildPipeline(def, { file });
  return runToEnd(pipeline, {
    stats: args.flags.has('stats'),
    progress: !args.flags.has('no-progress') && !args.flags.has('quiet') && (args.flags.has('progress') || !!process.stderr.isTTY),
  });
}

/**
 * Run until a finite source ends and every sink has flushed, or until
 * SIGINT/SIGTERM: the first asks the sources to stop and lets in-flight events
 * drain (exit 0); a second one tears everything down at once (exit 130).
 */
export async function runToEnd(
  pipeline: Awaited<ReturnType<typeof buildPipeline>>,
  o: { stats: boolean; progress: boolean },
): Promise<number> {
  const started = process.hrtime.bigint();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\nskafe: ${sig}: draining in-flight events (again to abort)\n`);
      pipeline.stop();
    } else {
      pipeline.destroy(new Error(`aborted by a second ${sig}`));
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP means "reopen your logs / reload" (logrotate, auditd reconfiguring its
  // plugins); the stages that have something to reopen listen for it. It must
  // never end the process, which is Node's default without a listener.
  const onHup = () => {};
  process.on('SIGHUP', onHup);
  const progress = o.progress ? new Progress(pipeline, process.stderr) : undefined;
  progress?.begin();
  let code = 0;
  try {
    await pipeline.run();
  } catch (err) {
    code = signals > 1 ? 130 : 1;
    progress?.end();
    process.stderr.write(`skafe: ${(err as { code?: string }).code ? (err as { code: string }).code + ': ' : ''}${(err as Error).message}\n`);
  } finally {
    progress?.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onHup);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const malformed = pipeline.stages.reduce((n, s) => n + s.counters.malformed, 0);
  if (malformed > 0) process.stderr.write(`skafe: ${malformed} malformed input line(s) skipped (see warnings above; --stats for counts)\n`);
  if (o.stats) process.stderr.write(statsTable(pipeline.stages, seconds));
  return code;
}
