import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from '../args.js';
import { buildPipeline, stderrLogger, type PipelineDefinition } from '../../pipeline.js';
import type { Logger } from '../../stage.js';
import { serverDefinition } from '../../config/server-config.js';
import { runToEnd } from './run.js';
import { pipelinesDir } from './agent.js';

export const summary = 'run the server: skafe server -config FILE [--print-definition]';

/** The agent's `log` / the server's `serverlog`: stderr, stdout or a file (syslog: stderr, which journald captures). */
export function fileLogger(where: string): Logger {
  if (where === 'stderr' || where === 'syslog') return stderrLogger;
  const out = where === 'stdout' ? (s: string) => process.stdout.write(s) : (s: string) => fs.appendFileSync(where, s);
  const line = (lvl: string) => (m: string) => out(`${new Date().toISOString()} ${lvl}${m}\n`);
  return { info: line(''), warn: line('warning: '), error: line('error: ') };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['config'], bools: ['print-definition', 'stats'], aliases: { conf: 'config', c: 'config' } });
  const file = (args.flags.get('config') as string | undefined) ?? '/etc/skafe/skafe-server.conf';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    process.stderr.write(`skafe server: cannot read config ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const baseFile = path.join(pipelinesDir, 'server.json');
  const base = JSON.parse(fs.readFileSync(baseFile, 'utf8')) as PipelineDefinition;
  let settings;
  try {
    settings = serverDefinition(text, file, base);
  } catch (e) {
    process.stderr.write(`skafe server: ${(e as Error).message}\n`);
    return 2;
  }
  if (args.flags.has('print-definition')) {
    process.stdout.write(JSON.stringify(settings.definition, null, 2) + '\n');
    return 0;
  }
  const pipeline = await buildPipeline(settings.definition, { file: baseFile, log: fileLogger(settings.log) });
  return runToEnd(pipeline, { stats: args.flags.has('stats'), progress: false });
}
