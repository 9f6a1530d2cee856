import { SkafeError } from '../errors.js';

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
  /** Repeatable flags (`--where a=b --where c=d`) in order. */
  multi: Map<string, string[]>;
}

/**
 * Small GNU/Go-style parser: `--name value`, `--name=value`, `-name value` (the
 * original SKAFE used Go's flag package: `-config FILE`), boolean flags listed in `bools`.
 */
export function parseArgs(argv: string[], spec: { bools?: string[]; values?: string[]; aliases?: Record<string, string> }): ParsedArgs {
  const bools = new Set(spec.bools ?? []);
  const values = new Set(spec.values ?? []);
  const aliases = spec.aliases ?? {};
  const out: ParsedArgs = { positional: [], flags: new Map(), multi: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      let name = a.replace(/^--?/, '');
      let value: string | undefined;
      const eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      name = aliases[name] ?? name;
      if (bools.has(name)) {
        out.flags.set(name, true);
        continue;
      }
      if (!values.has(name)) throw new SkafeError('SKAFE_USAGE', `unknown option ${a}`);
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new SkafeError('SKAFE_USAGE', `option ${a} needs a value`);
      }
      out.flags.set(name, value);
      const m = out.multi.get(name) ?? [];
      m.push(value);
      out.multi.set(name, m);
      continue;
    }
    out.positional.push(a);
  }
  return out;
}
