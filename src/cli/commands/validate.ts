import { loadDefinition } from '../../pipeline.js';
import { parseArgs } from '../args.js';

export const summary = 'check a pipeline definition file without running it';

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { bools: ['quiet'] });
  if (args.positional.length !== 1) {
    process.stderr.write('usage: skafe validate FILE\n');
    return 2;
  }
  const file = args.positional[0]!;
  try {
    const def = loadDefinition(file);
    if (!args.flags.has('quiet')) process.stdout.write(`${file}: valid (${def.stages.map((s) => s.use).join(' → ')})\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`skafe: ${(err as Error).message}\n`);
    return 1;
  }
}
