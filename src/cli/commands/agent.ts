import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../args.js';
import { buildPipeline, type PipelineDefinition } from '../../pipeline.js';
import { agentDefinition } from '../../config/agent-config.js';
import { readSpoolCursor } from '../../transforms/spool.js';
import { runToEnd } from './run.js';
import { fileLogger } from './server.js';

export const summary = 'run the agent: skafe agent -config FILE [-auditor] [--print-definition]';

export const pipelinesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'pipelines');

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['config'], bools: ['auditor', 'print-definition', 'stats'], aliases: { conf: 'config', c: 'config' } });
  const file = (args.flags.get('config') as string | undefined) ?? '/etc/skafe/skafe-agent.conf';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    process.stderr.write(`skafe agent: cannot read config ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const baseFile = path.join(pipelinesDir, 'agent.json');
  const base = JSON.parse(fs.readFileSync(baseFile, 'utf8')) as PipelineDefinition;
  let settings;
  try {
    settings = agentDefinition(args.flags.has('auditor') ? `${text}\nsource = netlink\n` : text, file, base);
  } catch (e) {
    process.stderr.write(`skafe agent: ${(e as Error).message}\n`);
    return 2;
  }
  const def = settings.definition;
  // Resumable file input: start where the last committed batch of events ended.
  if (settings.sourceFile) {
    const cursor = await readSpoolCursor(settings.spoolDir);
    if (cursor && (cursor.path === undefined || path.resolve(cursor.path) === settings.sourceFile)) {
      def.stages[0]!.resume = { dev: cursor.dev, ino: cursor.ino, offset: cursor.offset };
    }
  }
  if (args.flags.has('print-definition')) {
    process.stdout.write(JSON.stringify(def, null, 2) + '\n');
    return 0;
  }
  const pipeline = await buildPipeline(def, { file: baseFile, log: fileLogger(settings.log) });
  return runToEnd(pipeline, { stats: args.flags.has('stats'), progress: false });
}
