// LevelDB, loaded on first use: only the spool and the queue need it, and
// loading it (native binding and all) is a fifth of a replay's start-up.
import type { Level } from 'level';

export type LevelDb = Level<string, Buffer>;

/** A LevelDB at `dir` with the keys and values every skafe store uses (not yet opened). */
export async function levelDb(dir: string): Promise<LevelDb> {
  const { Level } = await import('level');
  return new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
}
