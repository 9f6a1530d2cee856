// The benches' rule tree: 100 match rules, perl and posix in turn, three deep
// (r0 ← r1 ← r2, r3 ← r4 ← r5, …), on dotted and alias keys. `trigger(i)` is
// rule i's trigger, or null for none (the rule only gates its children).
const KEYS = ['process.executable', 'bin', 'uname', 'user.name', 'syscall', 'auditd.data.syscall', 'comm', 'key', 'cwd', 'process.args'];

export function benchRules(trigger: (i: number) => string | null): string {
  let text = '';
  for (let i = 0; i < 100; i++) {
    const type = i % 2 ? 'posix' : 'perl';
    const letter = 'abcdefghijklmnopqrstuvwxyz'[i % 26];
    const re = type === 'posix' ? `^[[:alnum:]/_.-]*${letter}` : `(?:^|/)\\w*${letter}\\w*$`;
    const t = trigger(i);
    text += `[r${i}]\nwatch = ${i % 3 === 0 ? 'base' : `r${i - 1}`}\naction = match\nregextype = ${type}\n${t ? `trigger = ${t}\n` : ''}match_${KEYS[i % KEYS.length]} = ${re}\n`;
  }
  return text;
}
