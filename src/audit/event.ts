import type { AuditRecord } from './record.js';

/**
 * One kernel event as skafe emits it: Elastic Common Schema names, laid out as
 * Auditbeat's auditd module does. docs/event-shape.md documents every field and
 * test/fixtures/event.schema.json checks it. Plain JSON, so every stage after
 * coalesce (rules, spool, link) handles it without knowing audit.
 */
export interface AuditEvent {
  '@timestamp': string;
  event: { id: string; kind?: string; category?: string[]; action?: string; outcome?: 'success' | 'failure' | 'unknown'; [k: string]: unknown };
  auditd: {
    sequence: number;
    records: Array<{ type: string; fields: Record<string, string> }>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export type Interpreter = (records: AuditRecord[]) => AuditEvent;
