import type { StageDefinition } from './stage.js';
import file from './sources/file.js';
import stdin from './sources/stdin.js';
import coalesce from './transforms/coalesce.js';
import filter from './transforms/filter.js';
import jsonl from './sinks/jsonl.js';
import stdout from './sinks/stdout.js';
import stderr from './sinks/stderr.js';

// Every stage a definition file can `use`, by name. One line per stage module.
export const stages: Record<string, StageDefinition> = {
  file,
  stdin,
  coalesce,
  filter,
  jsonl,
  stdout,
  stderr,
};
