// Every error code skafe raises is declared here, once. Callers branch on
// `err.code`, never on the message (the Level convention). A test checks that
// each code is used and documented.

export const ErrorCodes = {
  // definition files and options
  SKAFE_DEFINITION_READ: 'the pipeline definition file cannot be read',
  SKAFE_DEFINITION_JSON: 'the pipeline definition file is not valid JSON',
  SKAFE_DEFINITION_INVALID: 'the pipeline definition does not match its schema',
  SKAFE_UNKNOWN_STAGE: 'a stage names a `use` that no registered stage has',
  SKAFE_STAGE_ORDER: 'stages are not in source → transforms → sink order',
  SKAFE_CONFIG_INVALID: 'an INI configuration file has a bad key or value',
  SKAFE_USAGE: 'the command line is wrong',

  // input
  SKAFE_INPUT_OPEN: 'an input file or device cannot be opened',
  SKAFE_MALFORMED_RECORD: 'an audit record line cannot be parsed (counted, skipped)',
  SKAFE_LINE_TOO_LONG: 'an input line exceeds the maximum length (counted, skipped)',
  SKAFE_MALFORMED_EVENT: 'an event given as JSON text is not a JSON object (counted; the server queue keeps its text as event.original, the rule stage skips it)',

  // output
  SKAFE_OUTPUT_OPEN: 'an output file cannot be opened',
  SKAFE_OUTPUT_WRITE: 'writing to an output failed',

  // coalescing
  SKAFE_EVENT_EVICTED: 'an open event was completed early because the open-event cap was reached',

  // kernel (native/netlink)
  SKAFE_NETLINK: 'a netlink socket operation failed',
  SKAFE_AUDIT_DAEMON_BUSY: 'another process is registered as the kernel audit daemon',
  SKAFE_AUDIT_RULE: 'an audit rule line is invalid',
  SKAFE_KERNEL_LOSS: 'the kernel reports lost audit records',

  // delivery
  SKAFE_SPOOL: 'the spool cannot be opened or written',
  SKAFE_SPOOL_CORRUPT: 'the spool is corrupt and was moved aside',
  SKAFE_SPOOL_FULL: 'the spool is full',
  SKAFE_TLS: 'a TLS configuration or handshake problem',
  SKAFE_PROTOCOL: 'a peer broke the link protocol',
  SKAFE_QUEUE: 'the server queue cannot be opened or written',
  SKAFE_TOO_MANY_EVENTS: "an agent's batch holds more events than the queue's max_batch_events (dropped and reported, as SKAFE_QUEUE)",

  // rules and scripts
  SKAFE_RULES_INVALID: 'a .rules file is invalid',
  SKAFE_SCRIPT: 'a script rule failed (counted as no match)',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface SkafeErrorDetails {
  file?: string;
  line?: number;
  stage?: string;
  field?: string;
  cause?: unknown;
  [k: string]: unknown;
}

export class SkafeError extends Error {
  readonly code: ErrorCode;
  readonly details: SkafeErrorDetails;
  constructor(code: ErrorCode, message: string, details: SkafeErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'SkafeError';
    this.code = code;
    this.details = details;
  }
}

export function isSkafeError(e: unknown, code?: ErrorCode): e is SkafeError {
  return e instanceof SkafeError && (code === undefined || e.code === code);
}
