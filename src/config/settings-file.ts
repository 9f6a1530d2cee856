import path from 'node:path';
import { parseIni, iniGet, iniError, type IniKey } from './ini.js';
import type { PipelineDefinition, StageSpec } from '../pipeline.js';

/**
 * What `skafe agent` and `skafe server` share in reading their INI file: one
 * section of known keys (an unknown key or a [section] names file and line),
 * paths relative to the file, and a copy of the shipped definition to fill.
 */
export function openSettings(text: string, file: string, keys: readonly string[], what: 'agent' | 'server', base: PipelineDefinition) {
  const doc = parseIni(text, file);
  const g = doc.sections[0]!;
  const extra = doc.sections[1];
  if (extra) throw iniError(file, extra, `unexpected section [${extra.name}]: ${what} settings have no sections`);
  for (const k of g.keys) if (!keys.includes(k.key)) throw iniError(file, k, `unknown key (known: ${keys.join(', ')})`);
  const dir = path.dirname(path.resolve(file));
  const def = structuredClone(base) as PipelineDefinition;
  return {
    dir,
    def,
    get: (name: string) => iniGet(g, name),
    rel: (k: IniKey) => path.resolve(dir, k.value),
    stage: (use: string): StageSpec => {
      const s = def.stages.find((x) => x.use === use);
      if (!s) throw iniError(file, { line: 0 }, `the ${what} definition has no "${use}" stage`);
      return s;
    },
  };
}
