import { SkafeError } from '../errors.js';
import type { CompiledRule, CompiledRuleSet } from '../audit/rules/compile.js';
import type { AuditNetlink } from './audit-netlink.js';

export interface LoadResult {
  /** Rules the kernel accepted from us: exactly these are deleted on exit. */
  added: CompiledRule[];
  /** Rules the kernel refused while continueOnError was set. */
  refused: Array<{ rule: CompiledRule; error: Error }>;
  /** Rules the kernel had before, removed by -d/-W lines: to be added back on exit. */
  deleted: Buffer[];
}

/**
 * Adds (and, for -d/-W lines, deletes) a compiled rule set's rules in order;
 * what a -d/-W line removed of the machine's own rules is returned, to be put
 * back on exit.
 * A refused rule stops loading and rolls back what this call added, unless the
 * file asked to continue (-c/-i). The kernel's EEXIST for a duplicate rule is
 * an error like any other, as with auditctl.
 */
export async function loadRules(conn: AuditNetlink, set: CompiledRuleSet, opts: { continueOnError?: boolean } = {}): Promise<LoadResult> {
  const added: CompiledRule[] = [];
  const refused: LoadResult['refused'] = [];
  const deleted: Buffer[] = [];
  const goOn = opts.continueOnError ?? set.controls.continueOnError;
  for (const rule of set.rules) {
    try {
      if (rule.op === 'add') {
        await conn.addRule(rule.data);
        added.push(rule);
      } else {
        await conn.deleteRule(rule.data);
        // a rule this file added earlier is simply no longer ours; any other was the machine's
        const mine = added.findIndex((a) => a.data.equals(rule.data));
        if (mine >= 0) added.splice(mine, 1);
        else deleted.push(rule.data);
      }
    } catch (e) {
      if (goOn) {
        refused.push({ rule, error: e as Error });
        continue;
      }
      await deleteRules(conn, added);
      for (const d of deleted) await conn.addRule(d).catch(() => undefined);
      const err = e as NodeJS.ErrnoException;
      throw new SkafeError('SKAFE_AUDIT_RULE', `${set.file ?? 'rules'}:${rule.line}: the kernel refused "${rule.text}": ${err.code ?? err.message}`, { file: set.file, line: rule.line, cause: e });
    }
  }
  return { added, refused, deleted };
}

/** Deletes the given rules, newest first; failures (already gone) are returned, not thrown. */
export async function deleteRules(conn: AuditNetlink, rules: CompiledRule[]): Promise<Error[]> {
  const errors: Error[] = [];
  for (const rule of [...rules].reverse()) {
    try {
      await conn.deleteRule(rule.data);
    } catch (e) {
      errors.push(e as Error);
    }
  }
  return errors;
}
