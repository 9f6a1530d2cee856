import fs from 'node:fs';
import path from 'node:path';
import { SkafeError } from '../errors.js';

/** Read a PEM file named in options, resolving against the definition's directory; name the option on failure. */
export function readPem(baseDir: string, file: string | undefined, option: string, stage: string): Buffer | undefined {
  if (file === undefined) return undefined;
  const p = path.resolve(baseDir, file);
  try {
    return fs.readFileSync(p);
  } catch (e) {
    throw new SkafeError('SKAFE_TLS', `${stage}: cannot read ${option} ${p}: ${(e as Error).message}`, { file: p, field: option, cause: e });
  }
}

export function requirePem(baseDir: string, file: string | undefined, option: string, stage: string): Buffer {
  const b = readPem(baseDir, file, option, stage);
  if (!b) throw new SkafeError('SKAFE_TLS', `${stage}: TLS needs ${option} (or set "tls": false explicitly for plaintext)`, { field: option });
  return b;
}
