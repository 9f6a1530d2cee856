// `skafe COMMAND …`: each command lives in src/cli/commands/NAME.ts and exports
// `run(argv): Promise<number>` (the exit code). Loaded lazily so `skafe tail`
// does not pay for the rule engine.
type Command = { run(argv: string[]): Promise<number>; summary: string };

const commands: Record<string, () => Promise<Command>> = {
  run: () => import('./commands/run.js'),
  validate: () => import('./commands/validate.js'),
  tail: () => import('./commands/tail.js'),
  stages: () => import('./commands/stages.js'),
  demo: () => import('./commands/demo.js'),
  'audit-rules': () => import('./commands/audit-rules.js'),
  rules: () => import('./commands/rules.js'),
  agent: () => import('./commands/agent.js'),
  server: () => import('./commands/server.js'),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    const lines = ['usage: skafe COMMAND [options]', '', 'commands:'];
    for (const [n, load] of Object.entries(commands)) lines.push(`  ${n.padEnd(12)} ${(await load()).summary}`);
    process.stdout.write(lines.join('\n') + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    const { createRequire } = await import('node:module');
    process.stdout.write(createRequire(import.meta.url)('../../../package.json').version + '\n');
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`skafe: unknown command "${name}" (try: skafe --help)\n`);
    return 2;
  }
  return (await load()).run(rest);
}
