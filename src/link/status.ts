import { randomBytes } from 'node:crypto';

// Agent and server status as ordinary events, so rules can match them:
// event.module 'skafe', event.dataset 'skafe.agent'.
export type StatusAction =
  | 'agent-started'
  | 'agent-stopped'
  | 'agent-connected'
  | 'agent-disconnected'
  | 'spool-overflow'
  | 'spool-expired'
  | 'spool-corrupt'
  | 'event-too-large';

export function statusEvent(action: StatusAction, fields: Record<string, unknown> = {}, message?: string): object {
  return {
    '@timestamp': new Date().toISOString(),
    event: {
      id: `skafe-${action}-${Date.now()}-${randomBytes(4).toString('hex')}`,
      kind: action.startsWith('spool-') || action === 'event-too-large' ? 'alert' : 'event',
      module: 'skafe',
      dataset: 'skafe.agent',
      action,
    },
    ...(message ? { message } : {}),
    skafe: fields,
  };
}

export function isStatusEvent(e: unknown): boolean {
  return (e as { event?: { module?: string } })?.event?.module === 'skafe';
}
