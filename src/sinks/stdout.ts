import { defineStage } from '../stage.js';
import { StdioSink } from './stdio.js';

export default defineStage<Record<string, never>>({
  kind: 'sink',
  use: 'stdout',
  acceptsEncoded: true,
  acceptsEncodedBytes: true,
  description: 'events as JSON lines on standard output',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create: (_o, ctx) => new StdioSink(process.stdout, 'stdout', ctx),
});
