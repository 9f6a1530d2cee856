import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { renderStagesMarkdown } from '../src/cli/commands/stages.js';
import { repoRoot } from './helpers/env.js';

t.test('docs/stages.md is what `skafe stages --markdown` renders from the schemas', async (t) => {
  const file = path.join(repoRoot, 'docs', 'stages.md');
  t.equal(fs.readFileSync(file, 'utf8'), renderStagesMarkdown(), 'regenerate with: ./bin/skafe stages --markdown > docs/stages.md');
});

t.test('every stage has a description and an object schema', async (t) => {
  const { stages } = await import('../src/registry.js');
  for (const [name, def] of Object.entries(stages)) {
    t.equal(def.use, name, `${name}: registered under its own use name`);
    t.ok(def.description.length > 10, `${name}: described`);
    t.equal(def.schema.type, 'object', `${name}: schema is an object`);
    t.equal(def.schema.additionalProperties, false, `${name}: unknown options are refused`);
  }
});
