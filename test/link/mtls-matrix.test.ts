import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import net from 'node:net';
import { buildPipeline } from '../../src/pipeline.js';
import { makeCerts, type Pair } from '../helpers/certs.js';
import { fixtures, need } from '../helpers/env.js';
import { memoryLogger, startServer, readEventLog } from '../helpers/delivery.js';
import { encodeJson, encodeBatch, MsgType, PROTOCOL_VERSION } from '../../src/link/protocol.js';
import { packEvents } from '../../src/link/codec.js';

// Every bad client is refused before one event is accepted, and each refusal is
// logged with its reason; an agent refuses a server with the wrong CA or name.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('mTLS matrix', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const certs = makeCerts();
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-mtls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const slog = memoryLogger();
  const eventLog = path.join(dir, 'events.jsonl');
  const server = await startServer({ certs, queueDir: path.join(dir, 'queue'), eventLog, log: slog });
  t.teardown(async () => {
    server.pipeline.stop();
    await server.done;
  });
  const listenCounters = server.pipeline.stages.find((s) => s.use === 'listen')!.counters;
  const queueCounters = server.pipeline.stages.find((s) => s.use === 'queue')!.counters;

  /** Connect like an agent would and push a HELLO and a batch regardless of what the server thinks. */
  async function rawAttempt(opts: { cert?: Pair; plaintext?: boolean; helloOnly?: boolean }): Promise<string> {
    const payload = Buffer.concat([
      encodeJson(MsgType.HELLO, { v: PROTOCOL_VERSION, agent: 'intruder', spool: 'ab'.repeat(16), next: 0 }),
      ...(opts.helloOnly ? [] : [encodeBatch({ first: 0, count: 1, data: await packEvents([{ event: { id: 'intruder-1' } }]) })]),
    ]);
    return new Promise((resolve) => {
      let outcome = 'no error';
      const sock = opts.plaintext
        ? net.connect({ host: '127.0.0.1', port: server.port }, () => sock.write(payload))
        : tls.connect(
            { host: '127.0.0.1', port: server.port, ca: fs.readFileSync(certs.ca), ...(opts.cert ? { cert: fs.readFileSync(opts.cert.cert), key: fs.readFileSync(opts.cert.key) } : {}) },
            () => sock.write(payload),
          );
      sock.on('error', (e) => (outcome = e.message));
      sock.on('data', () => {});
      sock.on('close', () => resolve(outcome));
      setTimeout(() => sock.destroy(), 3000).unref();
    });
  }

  const cases: Array<[string, { cert?: Pair; plaintext?: boolean }, RegExp]> = [
    ['client cert from an unknown CA', { cert: certs.clientOtherCa }, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER/],
    ['self-signed client cert', { cert: certs.clientSelfSigned }, /self[- ]signed|DEPTH_ZERO|unable to get|issuer/i],
    ['expired client cert', { cert: certs.clientExpired }, /expired/i],
    ['not yet valid client cert', { cert: certs.clientNotYetValid }, /not yet valid|NOT_YET_VALID/i],
    ['client cert without clientAuth usage', { cert: certs.clientNoClientAuth }, /purpose|INVALID_PURPOSE/i],
    ['no client certificate', {}, /certificate|PEER_DID_NOT_RETURN/i],
    ['plaintext client', { plaintext: true }, /wrong version|http request|record|packet|ssl/i],
  ];
  for (const [name, opts, reason] of cases) {
    const before = slog.lines.length;
    const refusedBefore = listenCounters.extra.refused ?? 0;
    await rawAttempt(opts);
    await sleep(50);
    const logged = slog.lines.slice(before).join('\n');
    t.equal(listenCounters.extra.refused ?? 0, refusedBefore + 1, `${name}: refused`);
    t.match(logged, reason, `${name}: refusal logged with its reason`);
    t.notMatch(logged, /connected from/, `${name}: never got past the handshake`);
  }
  t.equal(queueCounters.in, 0, 'not a single event was accepted');
  t.same(readEventLog(eventLog), [], 'event log is empty');

  // The good client gets in (so the refusals above are not a broken server).
  const good = await rawAttempt({ cert: certs.client, helloOnly: true });
  await sleep(200);
  t.equal(good, 'no error');
  t.match(slog.lines.join('\n'), /agent agent-1 connected/, 'a good client is accepted');

  // A good client that sends a batch before it was granted credit breaks the protocol.
  const before = slog.lines.length;
  await rawAttempt({ cert: certs.client2 });
  await sleep(100);
  t.match(slog.lines.slice(before).join('\n'), /refused agent-2: sent a batch without credit/, 'a batch without credit is refused');
  await sleep(200);
  t.ok(readEventLog(eventLog).every((e) => e.event.module === 'skafe'), 'only status events reached the event log, no intruder batch');

  // Agent side: a server with the wrong CA or the wrong name is refused by the tls sink.
  for (const [name, pair, reason] of [
    ['server cert from another CA', certs.serverOtherCa, /unable to get|issuer|UNABLE_TO_VERIFY|self[- ]signed/i],
    ['server cert for another name', certs.serverWrongName, /altnames|ERR_TLS_CERT_ALTNAME_INVALID|does not match/i],
  ] as const) {
    const wrong = await startServer({ certs: { ...certs, server: pair }, queueDir: path.join(dir, `q-${pair === certs.serverOtherCa ? 'ca' : 'name'}`), eventLog: path.join(dir, 'wrong.jsonl'), log: memoryLogger() });
    const alog = memoryLogger();
    const agent = await buildPipeline(
      {
        stages: [
          { use: 'file', path: fixtures('dev-1', 'audit.log') },
          { use: 'coalesce' },
          { use: 'spool', dir: path.join(dir, `spool-${wrong.port}`) },
          { use: 'tls', servers: [`127.0.0.1:${wrong.port}`], cert: certs.client.cert, key: certs.client.key, ca: certs.ca, backoff_initial: 0.1 },
        ],
      } as never,
      { log: alog },
    );
    const running = agent.run().catch(() => {});
    await sleep(700);
    const wrongQueue = wrong.pipeline.stages.find((s) => s.use === 'queue')!.counters;
    t.match(alog.lines.join('\n'), reason, `agent refuses a ${name}, logging why`);
    t.equal(wrongQueue.in, 0, `${name}: nothing was sent`);
    agent.destroy();
    await running;
    wrong.pipeline.stop();
    await wrong.done;
  }
});
