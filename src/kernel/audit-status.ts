import {
  AUDIT_STATUS_BACKLOG_LIMIT,
  AUDIT_STATUS_BACKLOG_WAIT_TIME,
  AUDIT_STATUS_ENABLED,
  AUDIT_STATUS_FAILURE,
  AUDIT_STATUS_PID,
  AUDIT_STATUS_RATE_LIMIT,
} from './audit-constants.js';

/** `struct audit_status` (AUDIT_GET reply, AUDIT_SET request). */
export interface AuditStatus {
  enabled: number;
  failure: number;
  pid: number;
  rateLimit: number;
  backlogLimit: number;
  lost: number;
  backlog: number;
  featureBitmap: number;
  backlogWaitTime: number;
}

const FIELDS = ['mask', 'enabled', 'failure', 'pid', 'rateLimit', 'backlogLimit', 'lost', 'backlog', 'featureBitmap', 'backlogWaitTime', 'backlogWaitTimeActual'] as const;

export function decodeAuditStatus(buf: Buffer): AuditStatus {
  const get = (i: number) => (buf.length >= (i + 1) * 4 ? buf.readUInt32LE(i * 4) : 0);
  return {
    enabled: get(1),
    failure: get(2),
    pid: get(3),
    rateLimit: get(4),
    backlogLimit: get(5),
    lost: get(6),
    backlog: get(7),
    featureBitmap: get(8),
    backlogWaitTime: get(9),
  };
}

/** What an AUDIT_SET may change. `lost` is deliberately absent: setting it resets the kernel's counter. */
export type AuditStatusChange = Partial<Pick<AuditStatus, 'enabled' | 'failure' | 'pid' | 'rateLimit' | 'backlogLimit' | 'backlogWaitTime'>>;

export function encodeAuditSet(change: AuditStatusChange): Buffer {
  const buf = Buffer.alloc(FIELDS.length * 4);
  let mask = 0;
  const put = (field: (typeof FIELDS)[number], bit: number, v: number | undefined) => {
    if (v === undefined) return;
    mask |= bit;
    buf.writeUInt32LE(v >>> 0, FIELDS.indexOf(field) * 4);
  };
  if (change.failure === 2) throw new RangeError('refusing to set audit failure mode 2 (panic)');
  put('enabled', AUDIT_STATUS_ENABLED, change.enabled);
  put('failure', AUDIT_STATUS_FAILURE, change.failure);
  put('pid', AUDIT_STATUS_PID, change.pid);
  put('rateLimit', AUDIT_STATUS_RATE_LIMIT, change.rateLimit);
  put('backlogLimit', AUDIT_STATUS_BACKLOG_LIMIT, change.backlogLimit);
  put('backlogWaitTime', AUDIT_STATUS_BACKLOG_WAIT_TIME, change.backlogWaitTime);
  buf.writeUInt32LE(mask >>> 0, 0);
  return buf;
}
