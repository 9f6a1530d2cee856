// A child process for the lifecycle tests: runs `netlink → coalesce → jsonl`
// from a definition file through the real pipeline builder, prints "ready"
// once the kernel holds our registration and rules, then leaves the way argv[3] says:
//   end      the pipeline is asked to stop (the normal path)
//   destroy  the pipeline is torn down at once (stream destroy)
//   throw    an uncaught exception
//   signal   waits; the test sends SIGTERM or SIGINT and nobody else handles it
import { buildPipeline, loadDefinition } from '../../src/pipeline.js';

const [file, how] = process.argv.slice(2);
const def = loadDefinition(file!);
const p = await buildPipeline(def, { file });
const running = p.run();
process.stdout.write('ready\n');
process.stdin.on('data', () => {
  if (how === 'end') p.stop();
  else if (how === 'destroy') p.destroy(new Error('destroyed by test'));
  else if (how === 'throw') setImmediate(() => { throw new Error('thrown by test'); });
});
running.then(
  () => process.stdout.write('finished\n'),
  (e: Error) => process.stdout.write(`failed ${e.message}\n`),
).finally(() => process.stdin.destroy());
