import { compileRulesFile } from '../../audit/rules/compile.js';
import { formatRule } from '../../audit/rules/format.js';
import { isSkafeError } from '../../errors.js';

export const summary = 'check an auditctl rules file offline, or list the kernel\'s audit rules (skafe audit-rules check FILE | list)';

const usage = `usage: skafe audit-rules check FILE...   compile auditctl-syntax rules files without touching the kernel
       skafe audit-rules list             print the rules and status the kernel holds now (needs root)
`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'check' && rest.length > 0) {
    let status = 0;
    for (const file of rest) {
      try {
        const set = compileRulesFile(file);
        const adds = set.rules.filter((r) => r.op === 'add').length;
        const c = set.controls;
        const settings = [c.deleteAll && '-D', c.backlogLimit !== undefined && `-b ${c.backlogLimit}`, c.failure !== undefined && `-f ${c.failure}`,
          c.rateLimit !== undefined && `-r ${c.rateLimit}`, c.backlogWaitTime !== undefined && `--backlog_wait_time ${c.backlogWaitTime}`,
          c.enabled !== undefined && `-e ${c.enabled}`].filter(Boolean);
        process.stdout.write(`${file}: ok, ${adds} rule${adds === 1 ? '' : 's'}${set.rules.length - adds ? `, ${set.rules.length - adds} deletions` : ''}${settings.length ? `; settings ${settings.join(' ')}` : ''}\n`);
      } catch (e) {
        if (!isSkafeError(e)) throw e;
        process.stderr.write(`skafe audit-rules: ${e.message}\n`);
        status = 1;
      }
    }
    return status;
  }
  if (sub === 'list' && rest.length === 0) {
    const { AuditNetlink } = await import('../../kernel/audit-netlink.js');
    let conn;
    try {
      conn = new AuditNetlink();
      const status = await conn.getStatus();
      const rules = await conn.listRules();
      process.stdout.write(`# enabled ${status.enabled} failure ${status.failure} pid ${status.pid} backlog_limit ${status.backlogLimit} backlog_wait_time ${status.backlogWaitTime} lost ${status.lost} backlog ${status.backlog}\n`);
      if (rules.length === 0) process.stdout.write('# no rules\n');
      for (const r of rules) process.stdout.write(formatRule(r) + '\n');
      return 0;
    } catch (e) {
      process.stderr.write(`skafe audit-rules list: ${(e as Error).message}\n`);
      return 1;
    } finally {
      conn?.close();
    }
  }
  process.stderr.write(usage);
  return sub === '-h' || sub === '--help' ? 0 : 2;
}
