import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createClient,
  type FetchLike,
  memoryStorage,
  type PushMessage,
  type PushwireClient,
  type PushwireError,
  type StateStore,
  wsTransport,
} from '@pushwire/client/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush, { type PushSubscription, type WebPushError } from 'web-push';
import { API_KEY, CLI, ROOT, spawnServer, startServer, tempDir, until } from './helpers/server.js';
import { httpsJson, makeTestCertificates, type TestCertificates } from './helpers/tls.js';

/**
 * Interop through the SDK and the CLI, with nothing of ours on the sending side: the npm
 * `web-push` library and its command-line tool push to the endpoint `client.pushSubscribe()` (or
 * `pushwire listen --webpush`) gave; the SDK, on a real WSS socket, hands over the exact plaintext.
 * TLS is a throw-away CA, trusted explicitly (`ca` options in this process, NODE_EXTRA_CA_CERTS
 * for child processes), never by turning certificate checks off.
 */

const run = promisify(execFile);
const WEB_PUSH_CLI = join(ROOT, 'node_modules/.bin/web-push');
const SUBJECT = 'mailto:ops@example.com';

/** `fetch` for the SDK that trusts only the test CA. */
const caFetch =
  (ca: string): FetchLike =>
  async (url, init) => {
    const r = await httpsJson(url, { ca, method: init.method, headers: init.headers, body: init.body });
    return { status: r.status, json: async () => r.body };
  };

describe('Web Push through the SDK: web-push library and CLI → Pushwire → client.pushSubscribe()', () => {
  let certs: TestCertificates;
  let url: string;
  let agent: Agent;
  let stop: () => Promise<void>;
  let cleanup: () => void;
  const vapid = webpush.generateVAPIDKeys();
  const clients: PushwireClient[] = [];

  beforeAll(async () => {
    const tmp = tempDir('pushwire-webpush-sdk-');
    cleanup = tmp.cleanup;
    certs = makeTestCertificates(tmp.dir);
    ({ url, stop } = await startServer({ tls: { cert: certs.cert, key: certs.key } }));
    agent = new Agent({ ca: certs.ca });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    agent.destroy();
    await stop();
    cleanup();
  });

  /** An SDK client over WSS, registering with the API key on first use of `storage`. */
  function device(storage: StateStore = memoryStorage()) {
    const client = createClient({
      url,
      register: { apiKey: API_KEY },
      storage,
      transport: wsTransport({ ca: certs.ca }),
      fetch: caFetch(certs.ca),
    });
    clients.push(client);
    const messages: PushMessage[] = [];
    const errors: PushwireError[] = [];
    client.on('message', (m) => messages.push(m));
    client.on('error', (e) => errors.push(e));
    return { client, messages, errors, storage };
  }

  const send = (s: PushSubscription, payload: string | null, options: webpush.RequestOptions = {}) =>
    webpush.sendNotification(s, payload, {
      vapidDetails: { subject: SUBJECT, publicKey: vapid.publicKey, privateKey: vapid.privateKey },
      TTL: 60,
      agent,
      ...options,
    });

  const texts = (ms: PushMessage[]) => ms.map((m) => m.data);

  it('sendNotification → the SDK hands over the exact plaintext, marked webpush, nothing else', async () => {
    const d = device();
    const sub = await d.client.pushSubscribe({ applicationServerKey: vapid.publicKey });
    const json = JSON.parse(JSON.stringify(sub));
    expect(Object.keys(json)).toEqual(['endpoint', 'expirationTime', 'keys']);
    expect(json.endpoint).toMatch(new RegExp(`^${url}/wp/[A-Za-z0-9_-]{32}$`));
    expect(json.expirationTime).toBeNull();
    await until(() => d.client.state === 'open', 10_000, 'open');
    const plaintexts = [
      'When I grow up, I want to be a watermelon 🍉',
      '{"build":42,"status":"green"}', // JSON-looking text stays text
      'y'.repeat(3993), // the largest payload one 4096-byte record holds; ~5.4 KB of data on the wire
    ];
    const first = await send(json, plaintexts[0]!, { urgency: 'high', topic: 'melon' });
    expect(first.statusCode).toBe(201);
    for (const p of plaintexts.slice(1)) expect((await send(json, p)).statusCode).toBe(201);
    await until(() => d.messages.length === 3, 10_000, 'three messages');
    expect(texts(d.messages)).toEqual(plaintexts);
    expect(d.messages.every((m) => m.webpush === true && m.stream === `d:${d.client.deviceId}`)).toBe(true);
    expect(Object.keys(d.messages[0]!).sort()).toEqual(
      ['collapseKey', 'data', 'exp', 'id', 'seq', 'stream', 'ts', 'webpush'].sort(),
    );
    expect(JSON.stringify(d.messages[0])).not.toMatch(/melon"|high|vapid|ops@example/); // Topic and Urgency stay on the server
    expect(d.errors).toEqual([]);
    // The same key again: the same subscription, not a new one.
    const again = await d.client.pushSubscribe({ applicationServerKey: vapid.publicKey });
    expect(JSON.stringify(again)).toBe(JSON.stringify(sub));
    const listed = await httpsJson<{ subscriptions: unknown[] }>(
      `${url}/v1/devices/${d.client.deviceId}/webpush`,
      { ca: certs.ca, headers: { authorization: `Bearer ${API_KEY}` } },
    );
    expect(listed.body.subscriptions).toHaveLength(1);
  });

  it('the web-push command-line tool publishes to the SDK’s endpoint (CA via NODE_EXTRA_CA_CERTS)', async () => {
    const d = device();
    const sub = await d.client.pushSubscribe({ applicationServerKey: vapid.publicKey });
    const { stdout } = await run(
      WEB_PUSH_CLI,
      [
        'send-notification',
        `--endpoint=${sub.endpoint}`,
        `--key=${sub.keys.p256dh}`,
        `--auth=${sub.keys.auth}`,
        '--payload=hello from the web-push CLI',
        '--ttl=300',
        `--vapid-subject=${SUBJECT}`,
        `--vapid-pubkey=${vapid.publicKey}`,
        `--vapid-pvtkey=${vapid.privateKey}`,
      ],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile }, timeout: 20_000 },
    );
    expect(stdout).toContain('Push message sent.');
    await until(() => d.messages.length === 1, 10_000, 'the CLI message');
    expect(d.messages[0]).toMatchObject({ data: 'hello from the web-push CLI', webpush: true });
    expect(d.messages[0]!.exp! - d.messages[0]!.ts).toBe(300_000);
  });

  it('TTL 0 to an offline SDK is dropped; a newer Topic replaces an undelivered one; keys survive a restart', async () => {
    const storage = memoryStorage();
    const first = device(storage);
    const sub = JSON.parse(JSON.stringify(await first.client.pushSubscribe()));
    await first.client.close(); // offline from here
    expect((await send(sub, 'now or never', { TTL: 0 })).statusCode).toBe(201);
    await send(sub, 'score 1:0', { topic: 'score' });
    await send(sub, 'other news', { topic: 'news' });
    await send(sub, 'score 2:0', { topic: 'score' });
    await send(sub, 'no topic', { TTL: 3600 });
    const second = device(storage); // the app restarts with its stored keys
    await until(() => second.messages.length === 3, 10_000, 'replay');
    await until(() => second.client.state === 'open', 10_000, 'open');
    expect((await send(sub, 'live', { TTL: 0 })).statusCode).toBe(201);
    await until(() => second.messages.length === 4, 10_000, 'live message');
    expect(texts(second.messages)).toEqual(['other news', 'score 2:0', 'no topic', 'live']);
    expect(second.errors).toEqual([]);
  });

  it('every Urgency the library sends is accepted and delivered', async () => {
    const d = device();
    const sub = await d.client.pushSubscribe({ applicationServerKey: vapid.publicKey });
    const urgencies = ['very-low', 'low', 'normal', 'high'] as const;
    for (const urgency of urgencies) expect((await send(sub, urgency, { urgency })).statusCode).toBe(201);
    await until(() => d.messages.length === 4, 10_000, 'four messages');
    expect(texts(d.messages)).toEqual([...urgencies]);
    expect(d.messages.every((m) => m.urgency === undefined)).toBe(true); // validated, never forwarded
  });

  it('pushUnsubscribe() → the library gets 410 from then on; the SDK forgets the keys', async () => {
    const d = device();
    const sub = JSON.parse(JSON.stringify(await d.client.pushSubscribe()));
    expect((await send(sub, 'before')).statusCode).toBe(201);
    await until(() => d.messages.length === 1, 10_000, 'before');
    expect(await d.client.pushUnsubscribe()).toBe(true);
    const gone = await send(sub, 'after').then(
      () => undefined,
      (e: WebPushError) => e,
    );
    expect(gone?.statusCode).toBe(410);
    expect(JSON.parse(gone!.body)).toMatchObject({ error: 'UNSUBSCRIBED' });
    expect(await d.client.getPushSubscription()).toBeNull();
    expect(texts(d.messages)).toEqual(['before']);
  });
});

describe('`pushwire listen --webpush` against a TLS `pushwire serve`', () => {
  let certs: TestCertificates;
  let server: Awaited<ReturnType<typeof spawnServer>>;
  let tmp: ReturnType<typeof tempDir>;
  let agent: Agent;
  const vapid = webpush.generateVAPIDKeys();
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    tmp = tempDir('pushwire-webpush-cli-');
    certs = makeTestCertificates(tmp.dir);
    server = await spawnServer(join(tmp.dir, 'data'), 0, [
      '--tls-cert',
      certs.certFile,
      '--tls-key',
      certs.keyFile,
    ]);
    agent = new Agent({ ca: certs.ca });
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
    agent.destroy();
    tmp.cleanup();
  });

  /** `pushwire listen` as a child that trusts the test CA through NODE_EXTRA_CA_CERTS only. */
  function listen(state: string, vapidKey = vapid.publicKey) {
    const proc = spawn(
      process.execPath,
      [
        CLI,
        'listen',
        '--server',
        server.url,
        '--api-key',
        API_KEY,
        '--state',
        state,
        '--webpush',
        '--vapid-key',
        vapidKey,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile } },
    );
    procs.push(proc);
    let out = '';
    let err = '';
    proc.stdout?.on('data', (d) => {
      out += d;
    });
    proc.stderr?.on('data', (d) => {
      err += d;
    });
    const lines = () =>
      out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const stopped = async () => {
      proc.kill('SIGTERM');
      if (proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
    };
    return { proc, lines, stderr: () => err, stopped };
  }

  const send = (s: PushSubscription, payload: string, options: webpush.RequestOptions = {}) =>
    webpush.sendNotification(s, payload, {
      vapidDetails: { subject: SUBJECT, publicKey: vapid.publicKey, privateKey: vapid.privateKey },
      TTL: 600,
      agent,
      ...options,
    });

  it('prints the subscription first, then each message decrypted; a restart keeps the subscription', async () => {
    const state = join(tmp.dir, 'listen-state.json');
    const l1 = listen(state);
    await until(() => l1.lines().length >= 1, 15_000, `subscription line\n${l1.stderr()}`);
    const first = l1.lines()[0] as { type: string; subscription: PushSubscription };
    expect(first.type).toBe('webpush-subscription');
    expect(Object.keys(first.subscription)).toEqual(['endpoint', 'expirationTime', 'keys']);
    expect(first.subscription.endpoint.startsWith(`${server.url}/wp/`)).toBe(true);
    expect(Object.keys(first.subscription.keys)).toEqual(['p256dh', 'auth']);
    await until(() => l1.stderr().includes('→ open'), 10_000, 'listen open');
    expect((await send(first.subscription, 'hello, terminal ✅')).statusCode).toBe(201);
    await until(() => l1.lines().length >= 2, 10_000, `message line\n${l1.stderr()}`);
    expect(l1.lines()[1]).toMatchObject({ data: 'hello, terminal ✅', webpush: true });
    await l1.stopped();

    // Sent while listen is down; on restart the subscription line still comes first, and is the same.
    expect((await send(first.subscription, 'while you were away')).statusCode).toBe(201);
    const l2 = listen(state);
    await until(() => l2.lines().length >= 2, 15_000, `restart lines\n${l2.stderr()}`);
    expect(l2.lines()[0]).toEqual(first);
    expect(l2.lines()[1]).toMatchObject({ data: 'while you were away', webpush: true });
    expect(l2.lines()).toHaveLength(2);
    await l2.stopped();
    expect(l2.stderr()).not.toMatch(/ERR_WEBPUSH/);
  });

  it('a --vapid-key that is not a P-256 key: a clear error and exit code 1, no subscription line', async () => {
    const l = listen(join(tmp.dir, 'bad-key-state.json'), 'not-a-key');
    const code = await new Promise((r) => l.proc.once('exit', r));
    expect(code).toBe(1);
    expect(l.stderr()).toMatch(/Web Push subscribe failed: applicationServerKey must be/);
    expect(l.lines()).toEqual([]);
  });
});
