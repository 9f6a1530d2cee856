import { iniError, type IniKey } from './ini.js';

// Typed readers for INI values; every failure names file, line and key.

export function bool(file: string, k: IniKey): boolean {
  const v = k.value.toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw iniError(file, k, `expected true or false, got "${k.value}"`);
}

export function int(file: string, k: IniKey, min: number, max: number): number {
  const n = Number(k.value);
  if (!/^\d+$/.test(k.value) || n < min || n > max) throw iniError(file, k, `expected an integer ${min}–${max}, got "${k.value}"`);
  return n;
}

export function num(file: string, k: IniKey, min: number): number {
  const n = Number(k.value);
  if (k.value === '' || !Number.isFinite(n) || n < min) throw iniError(file, k, `expected a number ≥ ${min}, got "${k.value}"`);
  return n;
}

/** 512, 64k, 10M, 1G (powers of 1024). */
export function bytes(file: string, k: IniKey): number {
  const m = /^(\d+)\s*([kmgt]?)i?b?$/i.exec(k.value);
  if (!m) throw iniError(file, k, `expected a size like 500M or 2G, got "${k.value}"`);
  return Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
}

/** 30, 30s, 15m, 12h, 7d → seconds. */
export function seconds(file: string, k: IniKey): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/i.exec(k.value);
  if (!m) throw iniError(file, k, `expected a duration like 30s, 15m, 12h or 7d, got "${k.value}"`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? '').toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
}

export function oneOf<T extends string>(file: string, k: IniKey, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(k.value)) throw iniError(file, k, `expected one of ${allowed.join(', ')}, got "${k.value}"`);
  return k.value as T;
}
