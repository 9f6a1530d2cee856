import fs from 'node:fs';
import { buildPipeline, type Pipeline } from '../../src/pipeline.js';
import type { Logger } from '../../src/stage.js';
import type { CertSet } from './certs.js';
import type { ListenSource } from '../../src/sources/listen.js';

/** A logger that keeps lines for assertions (and echoes them when SKAFE_TEST_LOG is set). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const put = (lvl: string) => (m: string) => {
    lines.push(`${lvl}: ${m}`);
    if (process.env.SKAFE_TEST_LOG) process.stderr.write(`${lvl}: ${m}\n`);
  };
  return { lines, info: put('info'), warn: put('warn'), error: put('error') };
}

export async function startServer(o: { certs?: CertSet; queueDir: string; eventLog: string; tls?: boolean; log?: Logger; extra?: object[]; queue?: object; listen?: object }): Promise<{ pipeline: Pipeline; port: number; done: Promise<void> }> {
  const listen: Record<string, unknown> = { use: 'listen', host: '127.0.0.1', port: 0, heartbeat: 1, idle_timeout: 5, ...o.listen };
  if (o.tls === false) listen.tls = false;
  else Object.assign(listen, { cert: o.certs!.server.cert, key: o.certs!.server.key, ca: o.certs!.ca });
  const pipeline = await buildPipeline(
    { stages: [listen as never, { use: 'queue', dir: o.queueDir, ...o.queue }, ...((o.extra ?? []) as never[]), { use: 'jsonl', path: o.eventLog }] },
    { log: o.log ?? memoryLogger() },
  );
  const port = (pipeline.services.get('listen') as ListenSource).address().port;
  return { pipeline, port, done: pipeline.run() };
}

export function readEventLog(file: string): Array<Record<string, any>> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
