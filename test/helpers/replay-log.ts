import fs from 'node:fs';
import { buildPipeline } from '../../src/pipeline.js';
import { memoryLogger } from './delivery.js';
import { parseRecordLine } from '../../src/audit/record.js';

// A large audit.log for conservation tests and benches: the dev-1 capture
// repeated with serials shifted by copy × 1,000,000, so every copy's events
// have distinct ids. Expected ids come from reading one copy the same way the
// agent does (file → coalesce) and shifting them the same way.

const SHIFT = 1_000_000;

export async function eventIdsOf(file: string, tmpOut: string): Promise<string[]> {
  await (await buildPipeline({ stages: [{ use: 'file', path: file }, { use: 'coalesce' }, { use: 'jsonl', path: tmpOut }] } as never, { log: memoryLogger() })).run();
  const ids = fs
    .readFileSync(tmpOut, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).event.id as string);
  fs.rmSync(tmpOut, { force: true });
  return ids;
}

/**
 * The event ids a correct reading of `file` yields: one per distinct record id
 * (node + sec.ms:serial), EOE excluded (it only ends an event). Computed from
 * the lines, not by running coalesce, so test set-up does not depend on it.
 */
export function recordEventIds(file: string): string[] {
  const seen = new Set<string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const r = parseRecordLine(line);
    if ('error' in r || r.type === 'EOE') continue;
    seen.add(r.node === undefined ? r.id : `${r.node} ${r.id}`);
  }
  return [...seen];
}

export async function makeReplayLog(source: string, dest: string, minEvents: number): Promise<{ ids: string[]; lines: number }> {
  const one = recordEventIds(source);
  const copies = Math.ceil(minEvents / one.length);
  const text = fs.readFileSync(source, 'utf8');
  const fd = fs.openSync(dest, 'w');
  const ids: string[] = [];
  let lines = 0;
  for (let k = 0; k < copies; k++) {
    const shifted = k === 0 ? text : text.replace(/audit\((\d+\.\d+):(\d+)\)/g, (_m, t: string, s: string) => `audit(${t}:${Number(s) + k * SHIFT})`);
    fs.writeSync(fd, shifted);
    lines += text.split('\n').length - 1;
    for (const id of one) {
      const [t, s] = id.split(':');
      ids.push(k === 0 ? id : `${t}:${Number(s) + k * SHIFT}`);
    }
  }
  fs.closeSync(fd);
  return { ids, lines };
}
