import type { StageDefinition } from './stage.js';
import file from './sources/file.js';
import stdin from './sources/stdin.js';
import netlink from './sources/netlink.js';
import coalesce from './transforms/coalesce.js';
import filter from './transforms/filter.js';
import jsonl from './sinks/jsonl.js';
import stdout from './sinks/stdout.js';
import stderr from './sinks/stderr.js';
import rules from './transforms/rules.js';
import syslog from './sinks/syslog.js';
import spool from './transforms/spool.js';
import throttle from './transforms/throttle.js';
import enrich from './transforms/enrich.js';
import serverEnrich from './transforms/server-enrich.js';
import queue from './transforms/queue.js';
import listen from './sources/listen.js';
import tls from './sinks/tls.js';

// Every stage a definition file can `use`, by name. One line per stage module.
export const stages: Record<string, StageDefinition> = {
  file,
  stdin,
  netlink,
  coalesce,
  filter,
  jsonl,
  stdout,
  stderr,
  rules,
  syslog,
  spool,
  throttle,
  enrich,
  'server-enrich': serverEnrich,
  queue,
  listen,
  tls,
};
