import { type Cursors, PROTOCOL_VERSION, type ServerFrame, TOPIC_PATTERN } from '@pushwire/protocol';
import type { ClientEvents, PushwireClient, Runtime } from './api.js';
import { createConnectionMachine } from './connection.js';
import { createDelivery } from './delivery.js';
import { createEmitter, type Disposer } from './emitter.js';
import {
  ClosedError,
  ForbiddenError,
  ListenerError,
  ProtocolViolationError,
  type PushwireError,
  RequestError,
} from './errors.js';
import { createInbound } from './inbound.js';
import { createInbox } from './inbox.js';
import { createStateKeeper } from './keeper.js';
import type { NotificationMessage, PushMessage } from './message.js';
import { microtask } from './microtask.js';
import { type ClientOptions, resolveOptions } from './options.js';
import { createRequests } from './requests.js';
import type { ConnectionState } from './state.js';
import { createTuner } from './tuner.js';
import { runWake, type WakeHost } from './wake.js';
import { rotateToken, sendWakeToken } from './wake-token.js';
import { createWebPush, webPushLoader } from './webpush.js';
import { createWebPushStage } from './webpush-stage.js';

export type { ClientEvents, PushwireClient, Runtime } from './api.js';

/**
 * Makes a {@link PushwireClient}: what a runtime entry's `createClient` calls. This is the facade
 * the app sees; it wires the parts, each of which has one job:
 *
 * - the connection machine (connection.ts): connect, lose, back off, rotate servers;
 * - per session (session.ts): the socket, frame codec and heartbeat timers;
 * - the inbound path (inbound.ts): session → Web Push stage (webpush-stage.ts) → delivery;
 * - delivery (delivery.ts): exactly-once to the app, acks after saves; the state keeper
 *   (keeper.ts): credentials and what is saved; the tuner (tuner.ts): the heartbeat policy;
 * - requests (requests.ts): subscribe/unsubscribe; Web Push subscriptions (webpush.ts);
 *   `wake()` (wake.ts).
 */
export function createPushwireClient(options: ClientOptions, runtime: Runtime): PushwireClient {
  const o = resolveOptions(options, () => runtime.defaultTransport());
  const report = (error: PushwireError): void => events.emit('error', error);
  const events = createEmitter<ClientEvents>((event, error) => {
    if (event !== 'error') report(new ListenerError(String(event), error));
  });
  const internal = createEmitter<Record<'alive' | 'welcome' | 'message' | 'closed', undefined>>();
  const inbox = createInbox<PushMessage>();
  const requests = createRequests();
  const disposers: Disposer[] = [];
  let closing: Promise<void> | undefined;
  /** Whether the heartbeat memory was restored from storage (on the first attempt, once). */
  let hbRestored = false;
  const http = () => o.servers[machine.server]!.http;

  const delivery = createDelivery({
    clock: o.clock,
    windowSize: o.dedupeWindow,
    ackDelay: o.ackDelay,
    ackBatch: o.ackBatch,
    topicAckDelay: o.topicAckDelay,
    random: o.random,
    deliver: (m) => {
      events.emit('message', m);
      if (m.notification !== undefined) events.emit('notification', m as NotificationMessage);
      inbox.push(m);
      internal.emit('message', undefined);
    },
    persist: () => keeper.save(),
    sendAcks: (acks) => {
      const s = machine.session;
      if (s === undefined) return;
      if (!s.pinging && s.pingDueIn() <= o.ackDelay)
        s.ping({ acks }); // a ping is due anyway: it carries them
      else s.send({ t: 'ack', acks });
    },
  });
  const keeper = createStateKeeper({
    store: o.storage,
    clock: o.clock,
    delivery,
    credentials: o.credentials,
    register: o.register,
    http,
    fetch: o.fetch,
    onError: report,
  });
  const tuner = createTuner({
    policy: o.heartbeat,
    clock: o.clock,
    networkKey: o.networkKey,
    remember: (key, learned) => keeper.remember(key, learned),
  });
  const loadWebPush = webPushLoader();
  const webpush = createWebPush(
    { keeper, http, fetch: o.fetch, closed: () => machine.state === 'closed' },
    loadWebPush,
  );
  const inbound = createInbound({
    delivery,
    stage: createWebPushStage({ keeper, load: loadWebPush, report }),
    report,
    fail: (error) => machine.fail(error),
  });

  /** Applies the heartbeat intervals to the open session. */
  const retune = (): void => {
    const s = machine.session;
    if (s !== undefined && machine.state === 'open') tuner.retune(s);
  };

  const onFrame = (f: ServerFrame): void => {
    switch (f.t) {
      case 'msg':
        return inbound.receive(f);
      case 'subbed':
        return requests.answer(f, delivery.subscribed(f.topic, f.seq));
      case 'unsubbed':
        return requests.answer(f, delivery.unsubscribed(f.topic));
      case 'error': {
        // A fatal one also ends the session: the machine does that after this.
        const text = `${f.code}: ${f.message}`;
        const opts = { serverCode: f.code };
        const refused =
          f.code === 'FORBIDDEN' ? new ForbiddenError(text, opts) : new RequestError(text, opts);
        if (f.ref !== undefined && requests.reject(f.ref, refused)) return;
        if (!f.fatal) report(new ProtocolViolationError(`the server reported ${text}`, opts));
      }
    }
  };

  const machine = createConnectionMachine(
    {
      clock: o.clock,
      transport: o.transport,
      random: o.random,
      backoff: o.backoff,
      urls: o.servers.map((s) => s.ws),
      connectTimeout: o.connectTimeout,
      pongTimeout: () => o.heartbeat.pongTimeout,
    },
    {
      prepare: async () => {
        await keeper.load();
        if (!hbRestored) {
          hbRestored = true;
          tuner.use(tuner.networkKey, keeper.learned(tuner.networkKey));
        }
        return keeper.credentials();
      },
      hello: (creds) => ({
        t: 'hello',
        v: PROTOCOL_VERSION,
        device: creds.deviceId,
        token: creds.token,
        cursors: delivery.beginSession(),
        hb: tuner.hello(),
      }),
      welcome: (w) => {
        tuner.welcome(w.hb); // never ping less often than the server accepted
        requests.welcome(w.topics);
      },
      opened: (session) => {
        session.heartbeat(tuner.effective, o.heartbeat.pongTimeout);
        delivery.sessionOpened();
        for (const frame of requests.frames()) session.send(frame);
        internal.emit('welcome', undefined);
      },
      frame: onFrame,
      session: {
        invalid: report,
        proof: (idle) => {
          if (tuner.evidence(true, idle)) retune();
        },
        alive: () => internal.emit('alive', undefined),
        acksForPing: () => delivery.takeAcks(),
      },
      silentDeath: (idle) => tuner.evidence(false, idle),
      dropping: (goaway) => {
        if (goaway) delivery.flushAcks(); // the draining server keeps fresh cursors
        delivery.endSession();
      },
      state: (change) => events.emit('state', change),
      report,
      fatal: (error) => {
        closing ??= shutdown(error);
      },
    },
  );

  async function shutdown(error: PushwireError | undefined): Promise<void> {
    if (machine.state === 'closed') return;
    if (error === undefined) delivery.flushAcks(); // a graceful close: the server keeps fresh cursors
    machine.stop(error);
    internal.emit('closed', undefined);
    requests.rejectAll(new ClosedError());
    inbox.end();
    for (const dispose of disposers.splice(0)) dispose();
    delivery.dispose();
    inbound.dispose();
    await keeper.persister.stop();
    events.clear();
    internal.clear();
  }

  const request = (t: 'sub' | 'unsub', topic: string): Promise<void> => {
    if (machine.state === 'closed') return Promise.reject(new ClosedError());
    if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) {
      return Promise.reject(
        new RequestError(`invalid topic ${JSON.stringify(topic)}`, { serverCode: 'BAD_TOPIC' }),
      );
    }
    const { frame, done } = requests.add(t, topic);
    if (machine.state === 'open') machine.session?.send(frame);
    return done;
  };

  const wakeHost = (): WakeHost => ({
    clock: o.clock,
    state: () => machine.state,
    ping: () => {
      const s = machine.session;
      return s !== undefined && machine.state === 'open' && (s.pinging || s.ping());
    },
    connectNow: () => {
      if (machine.state === 'idle' || machine.state === 'backoff') machine.connect();
    },
    reconnectNow: () => {
      if (machine.state === 'open') machine.connect();
    },
    pongTimeoutMs: o.heartbeat.pongTimeout * 1000,
    settled: () => !keeper.persister.busy && delivery.settled && inbound.idle,
    on: (event, fn) => internal.on(event, fn),
    holdImmediateAcks: () => delivery.holdImmediate(),
  });

  const client: PushwireClient = {
    get state(): ConnectionState {
      return machine.state;
    },
    get deviceId(): string | undefined {
      return keeper.deviceId;
    },
    get topics(): string[] {
      return requests.topics;
    },
    get networkKey(): string {
      return tuner.networkKey;
    },
    get heartbeatInterval(): number {
      return tuner.wanted;
    },
    get cursors(): Cursors {
      return delivery.cursors;
    },
    on: (event, listener) => events.on(event, listener),
    [Symbol.asyncIterator]: () => inbox.iterator(),
    subscribe: (topic) => request('sub', topic),
    unsubscribe: (topic) => request('unsub', topic),
    pushSubscribe: (opts) => webpush.subscribe(opts),
    pushUnsubscribe: () => webpush.unsubscribe(),
    getPushSubscription: () => webpush.current(),
    async setWakeToken(token) {
      if (machine.state === 'closed') throw new ClosedError();
      await sendWakeToken({ keeper, http, fetch: o.fetch }, token);
    },
    async rotateToken() {
      if (machine.state === 'closed') throw new ClosedError();
      await keeper.rotate((creds) => rotateToken({ http, fetch: o.fetch }, creds));
    },
    close() {
      closing ??= shutdown(undefined);
      return closing;
    },
    setBackground(on) {
      if (!tuner.background(on)) return;
      delivery.setBackground(on);
      retune();
    },
    networkChanged(key) {
      if (machine.state === 'closed') return;
      if (key !== undefined && key !== tuner.networkKey) tuner.use(key, keeper.learned(key));
      machine.networkChanged();
    },
    setOnline: (online) => machine.setOnline(online),
    wake: (deadlineMs) => runWake(wakeHost(), deadlineMs, o.wakeQuietPeriod),
  };

  const detach = runtime.attach?.(client);
  if (detach) disposers.push(detach);
  microtask(() => {
    if (machine.state === 'idle') machine.connect();
  });
  return client;
}
