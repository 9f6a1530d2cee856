import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { loadDefinition, validateDefinition, buildPipeline } from '../src/pipeline.js';
import { fixtures } from './helpers/env.js';
import { tmpdir, readJsonl } from './helpers/run.js';

const sample = fixtures('dev-1', 'audit.log');

t.test('the minimal form runs exactly as written', async (t) => {
  const dir = tmpdir(t);
  fs.copyFileSync(sample, path.join(dir, 'audit.log'));
  const file = path.join(dir, 'p.json');
  fs.writeFileSync(file, '{"stages":[{"use":"file","path":"audit.log"},{"use":"coalesce"},{"use":"jsonl","path":"events.jsonl"}]}');
  const p = await buildPipeline(loadDefinition(file), { file });
  await p.run();
  const events = readJsonl(fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8'));
  t.ok(events.length > 400, `${events.length} events`);
  t.equal(new Set(events.map((e) => e.event.id)).size, events.length, 'each event once');
});

t.test('invalid definitions name the file, the stage and the field', async (t) => {
  const cases: Array<[unknown, RegExp, string]> = [
    [{}, /f\.json: missing required field "stages"/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [] }, /f\.json: field "stages" must NOT have fewer than 1 items/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ path: 'x' }] }, /f\.json: stage 1: missing required field "use"/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ use: 'file', path: 'a' }, { use: 'coalesc' }, { use: 'stdout' }] }, /f\.json: stage 2 \(coalesc\): unknown stage "coalesc"/, 'SKAFE_UNKNOWN_STAGE'],
    [{ stages: [{ use: 'file' }, { use: 'stdout' }] }, /f\.json: stage 1 \(file\): missing required field "path"/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ use: 'file', path: 'a' }, { use: 'coalesce', lookahead: 'many' }, { use: 'stdout' }] }, /f\.json: stage 2 \(coalesce\): field "lookahead" must be integer/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ use: 'file', path: 'a', folow: true }, { use: 'stdout' }] }, /f\.json: stage 1 \(file\): unknown field "folow"/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ use: 'file', path: 'a', start: 'middle' }, { use: 'stdout' }] }, /f\.json: stage 1 \(file\): field "start" must be one of/, 'SKAFE_DEFINITION_INVALID'],
    [{ stages: [{ use: 'coalesce' }, { use: 'stdout' }] }, /stage 1 \(coalesce\): "coalesce" is a transform; the first stage must be a source/, 'SKAFE_STAGE_ORDER'],
    [{ stages: [{ use: 'file', path: 'a' }, { use: 'coalesce' }] }, /stage 2 \(coalesce\): .*the last stage must be a sink/, 'SKAFE_STAGE_ORDER'],
    [{ stages: [{ use: 'file', path: 'a' }, { use: 'fanout', branches: [[{ use: 'stdout' }], [{ use: 'jsonl' }]] }] }, /stage 2\.2\.1 \(jsonl\): missing required field "path"/, 'SKAFE_DEFINITION_INVALID'],
  ];
  for (const [def, re, code] of cases) {
    t.throws(() => validateDefinition(def, 'f.json'), { code, message: re }, String(re));
  }
});

t.test('bad JSON names the file and line', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'bad.json');
  fs.writeFileSync(file, '{\n  "stages": [\n    {"use": "file",}\n  ]\n}\n');
  t.throws(() => loadDefinition(file), { code: 'SKAFE_DEFINITION_JSON', message: new RegExp(`${file}:3:`) });
  t.throws(() => loadDefinition(path.join(dir, 'none.json')), { code: 'SKAFE_DEFINITION_READ' });
});

t.test('fanout: every event down every branch, with filters routing', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'p.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      stages: [
        { use: 'file', path: sample },
        { use: 'coalesce' },
        {
          use: 'fanout',
          branches: [
            [{ use: 'jsonl', path: 'all.jsonl' }],
            [{ use: 'filter', where: { 'auditd.data.syscall': '^execve$' } }, { use: 'jsonl', path: 'execs.jsonl' }],
          ],
        },
      ],
    }),
  );
  const p = await buildPipeline(loadDefinition(file), { file });
  await p.run();
  const all = readJsonl(fs.readFileSync(path.join(dir, 'all.jsonl'), 'utf8'));
  const execs = readJsonl(fs.readFileSync(path.join(dir, 'execs.jsonl'), 'utf8'));
  t.ok(execs.length > 10 && execs.length < all.length, `${execs.length} execs of ${all.length}`);
  t.ok(execs.every((e) => e.auditd.data.syscall === 'execve'));
  t.same(
    execs.map((e) => e.event.id),
    all.filter((e) => e.auditd?.data?.syscall === 'execve').map((e) => e.event.id),
  );
});

t.test('shipped definition files validate', async (t) => {
  const dir = path.join(fixtures('..', '..'), 'pipelines');
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    t.doesNotThrow(() => loadDefinition(path.join(dir, f)), f);
  }
});

t.test('every event of each committed corpus comes out of file → coalesce → jsonl exactly once', async (t) => {
  for (const corpus of ['dev-1', 'dev-2']) {
    const dir = tmpdir(t);
    const out = path.join(dir, 'events.jsonl');
    const p = await buildPipeline({ stages: [{ use: 'file', path: fixtures(corpus, 'audit.log') }, { use: 'coalesce' }, { use: 'jsonl', path: out }] });
    await p.run();
    const ids = readJsonl(fs.readFileSync(out, 'utf8')).map((e) => e.event.id);
    const expected = new Set(readJsonl(fs.readFileSync(fixtures(corpus, 'expected.jsonl'), 'utf8')).map((e) => e.id));
    t.equal(ids.length, new Set(ids).size, `${corpus}: no event twice`);
    t.same(new Set(ids), expected, `${corpus}: the same events as libauparse (its split events merged)`);
    t.equal(p.stages.reduce((n, s) => n + s.counters.malformed, 0), 0, `${corpus}: nothing malformed`);
  }
});

t.test('destroying a pipeline tears down fan-out branches too', async (t) => {
  const dir = tmpdir(t);
  const p = await buildPipeline({
    stages: [
      { use: 'file', path: sample, follow: true, pollIntervalMs: 20 },
      { use: 'coalesce' },
      { use: 'fanout', branches: [[{ use: 'jsonl', path: path.join(dir, 'a.jsonl') }], [{ use: 'filter', where: { 'event.id': '.' } }, { use: 'jsonl', path: path.join(dir, 'b.jsonl') }]] },
    ],
  });
  const running = p.run();
  await new Promise((r) => setTimeout(r, 300));
  p.destroy(new Error('torn down by test'));
  await t.rejects(running, /torn down by test|premature close/);
  await new Promise((r) => setTimeout(r, 50));
  const fan = p.streams.at(-1) as unknown as { heads: Array<{ destroyed: boolean }> };
  t.ok(fan.heads.every((h) => h.destroyed), 'every branch head destroyed');
});
