import t from 'tap';
import { parseIni, iniGet } from '../../src/config/ini.js';
import { isSkafeError } from '../../src/errors.js';

t.test('global keys, comments, dotted sections, line numbers', async (t) => {
  const doc = parseIni(
    [
      '# Configuration for the SKAFE server',
      'port = 6969',
      '; another comment',
      'tlscert = demoserver.pem   # trailing comment',
      '',
      '[MatchRule]',
      'trigger = log',
      '[MatchRule.test]',
      'match_key = exec[a-z]+',
      'match_hash = a#b',
      'quoted = " keep # this "',
      '[]',
      'log = stdout',
    ].join('\n'),
    'x.conf',
  );
  t.equal(doc.sections.length, 3);
  const g = doc.sections[0]!;
  t.equal(g.name, '');
  t.same(g.keys.map((k) => [k.key, k.value, k.line]), [
    ['port', '6969', 2],
    ['tlscert', 'demoserver.pem', 4],
    ['log', 'stdout', 13],
  ]);
  t.equal(doc.sections[1]!.name, 'MatchRule');
  t.equal(doc.sections[1]!.line, 6);
  t.equal(doc.sections[2]!.name, 'MatchRule.test');
  t.equal(iniGet(doc.sections[2]!, 'match_key')!.value, 'exec[a-z]+');
  t.equal(iniGet(doc.sections[2]!, 'match_hash')!.value, 'a#b');
  t.equal(iniGet(doc.sections[2]!, 'quoted')!.value, ' keep # this ');
});

t.test('later keys override earlier ones for iniGet; CRLF accepted', async (t) => {
  const doc = parseIni('a = 1\r\na = 2\r\n', 'y.conf');
  t.equal(iniGet(doc.sections[0]!, 'a')!.value, '2');
  t.equal(iniGet(doc.sections[0]!, 'a')!.line, 2);
});

t.test('errors name file and line', async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ['a = 1\n[broken\n', 2, /no closing/],
    ['a = 1\nb = 2\njust words\n', 3, /expected "key = value"/],
    ['= 3\n', 1, /without a key/],
    ['[A..B]\n', 1, /empty part/],
    ['x = "open\n', 1, /unterminated/],
  ];
  for (const [text, line, re] of cases) {
    try {
      parseIni(text, '/etc/skafe/bad.conf');
      t.fail(`no error for ${JSON.stringify(text)}`);
    } catch (e) {
      t.ok(isSkafeError(e, 'SKAFE_CONFIG_INVALID'), 'code');
      t.match((e as Error).message, `/etc/skafe/bad.conf:${line}:`);
      t.match((e as Error).message, re);
      t.equal((e as { details: { line: number } }).details.line, line);
    }
  }
});
