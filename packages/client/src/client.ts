import {
  type Cursors,
  type ErrorFrame,
  PROTOCOL_VERSION,
  type ServerFrame,
  TOPIC_PATTERN,
  type WelcomeFrame,
} from '@pushwire/protocol';
import { createDelivery, type Delivery } from './delivery.js';
import { createEmitter, type Disposer, type Emitter } from './emitter.js';
import {
  ClosedError,
  ForbiddenError,
  ListenerError,
  ProtocolViolationError,
  PushwireError,
  RequestError,
  TimeoutError,
} from './errors.js';
import { createInbox } from './inbox.js';
import { createStateKeeper, type StateKeeper } from './keeper.js';
import {
  isSilentDeath,
  type Loss,
  lossOfErrorFrame,
  lossOfException,
  lossOfSession,
  retryDelay,
} from './losses.js';
import type { NotificationMessage, PushMessage } from './message.js';
import { microtask } from './microtask.js';
import { type ClientOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { createRequests } from './requests.js';
import { openSession, type Session, type SessionEvents, type SessionLoss } from './session.js';
import { type ConnectionState, canTransition, type StateChange } from './state.js';
import type { Credentials } from './storage/types.js';
import { createTimers, type Timers } from './timers.js';
import type { Transport } from './transport/types.js';
import { createTuner, type HeartbeatTuner } from './tuner.js';
import { runWake, type WakeHost, type WakeReport } from './wake.js';
import { rotateToken, sendWakeToken, type WakeTokenOptions } from './wake-token.js';
import {
  createWebPush,
  type PushSubscribeOptions,
  type WebPush,
  type WebPushSubscription,
} from './webpush.js';

/** Events of a client and their payloads. */
export interface ClientEvents {
  /** A new message (each message once, in seq order per stream). */
  message: PushMessage;
  /** A new message that carries notification fields (also emitted as `message`). */
  notification: NotificationMessage;
  /** The connection state changed. */
  state: StateChange;
  /** Something went wrong; `error.fatal` tells whether the client stopped. */
  error: PushwireError;
}

/** How a runtime entry (browser, Node) completes the core. */
export interface Runtime {
  defaultTransport(): Transport;
  /** Wires environment events (online/offline, visibility); returns their disposer. */
  attach?(client: PushwireClient): Disposer | undefined;
}

/**
 * A Pushwire client: one resilient WebSocket, every message handed to the app once, in order.
 * Create it with `createClient`; it starts connecting on the next microtask.
 *
 * ```
 *          start                welcome
 *   idle ─────────▶ connecting ─────────▶ open
 *                    ▲  │   ▲               │
 *                    │  │   └───────────────┤ networkChanged()
 *     retry timer /  │  │ failure           │ socket lost, pong timeout, goaway, fatal server error
 *     networkChanged │  ▼                   │
 *     / wake()       backoff ◀──────────────┘      (offline: backoff waits without a timer)
 *
 *   any state ── close() / UNAUTHORIZED / UNSUPPORTED_VERSION / fatal config ──▶ closed
 * ```
 *
 * `_setState` (in {@link createPushwireClient}) is the only writer of the state and emits every change as `state`.
 * @example
 * const c = createClient({ url: 'https://push.example.com', register: { apiKey }, storage });
 * c.on('message', (m) => console.log(m.stream, m.seq, m.data));
 * await c.subscribe('news');
 */
export interface PushwireClient extends AsyncIterable<PushMessage> {
  /** Current connection state. */
  readonly state: ConnectionState;
  /** The device id, once credentials are known (given, loaded or registered). */
  readonly deviceId: string | undefined;
  /** Topics the device is subscribed to, as of the last welcome / subbed / unsubbed. */
  readonly topics: string[];
  /** Current network key (see {@link PushwireClient.networkChanged}). */
  readonly networkKey: string;
  /** Seconds between pings the heartbeat policy wants now (the session may be capped by the server). */
  readonly heartbeatInterval: number;
  /** Current cursors (stream → highest seq processed); a copy. */
  readonly cursors: Cursors;
  /** Listens to an event; returns the disposer that removes the listener. */
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): Disposer;
  /** Messages as an async iterator (from now on, buffered until read); ends when the client closes. */
  [Symbol.asyncIterator](): AsyncIterableIterator<PushMessage>;
  /**
   * Subscribes the device to a topic (persisted server-side: it survives reconnects). Sent now
   * if open, else once open. Resolves on `subbed`, after the topic's cursor is saved.
   */
  subscribe(topic: string): Promise<void>;
  /** Unsubscribes the device from a topic. Resolves on `unsubbed`. */
  unsubscribe(topic: string): Promise<void>;
  /**
   * Subscribes the device to Web Push (RFC 8030/8291): a subscription whose JSON is exactly a
   * browser's `PushSubscription.toJSON()`, for the app's backend to push to with any Web Push
   * library. The keys are made here and kept in storage; calling again returns the same
   * subscription while the server still has it. Web Push messages then arrive decrypted, like
   * any other message, with `webpush: true` and the plaintext in `data`.
   * @example
   * const sub = await client.pushSubscribe({ applicationServerKey: VAPID_PUBLIC_KEY });
   * await fetch('/my-backend/subscriptions', { method: 'POST', body: JSON.stringify(sub) });
   */
  pushSubscribe(options?: PushSubscribeOptions): Promise<WebPushSubscription>;
  /** Deletes the Web Push subscription: its endpoint answers 410 from then on; the keys are forgotten. */
  pushUnsubscribe(): Promise<boolean>;
  /** The stored Web Push subscription, or null (no network request). */
  getPushSubscription(): Promise<WebPushSubscription | null>;
  /** Registers the device's APNs/FCM token for content-free wake-ups (docs/mobile.md); null removes it. */
  setWakeToken(token: WakeTokenOptions | null): Promise<void>;
  /**
   * Rotates the device token: the server answers a new one (saved in the state store) and closes
   * the session that used the old one; the client reconnects with the new token at once. Rejects
   * with {@link RequestError} when the server refuses, {@link ConnectionError} when unreachable
   * (the old token then still works).
   */
  rotateToken(): Promise<void>;
  /**
   * Closes the client from any state: closes the socket (1000) without sending anything more,
   * rejects pending requests, ends iterators, removes environment listeners. Resolves once the
   * last state is saved.
   */
  close(): Promise<void>;
  /**
   * Foreground/background. In background acks leave without coalescing delay (the OS may suspend
   * the app any moment) and the policy's background interval applies (fixed: `backgroundInterval`).
   */
  setBackground(on: boolean): void;
  /**
   * The network changed (or may have): drop the current socket, which may be dead, and reconnect
   * at once without backoff. With `key`, switch the heartbeat memory to that network.
   */
  networkChanged(key?: string): void;
  /** Network availability (browser `online`/`offline`). Offline: no reconnect attempts until online. */
  setOnline(online: boolean): void;
  /**
   * For an OS keep-alive or background handler with `deadlineMs` left: ping (or reconnect now),
   * drain the replay, and resolve with a report strictly before the deadline.
   */
  wake(deadlineMs: number): Promise<WakeReport>;
}

/** Makes a {@link PushwireClient}: what a runtime entry's `createClient` calls. */
export function createPushwireClient(options: ClientOptions, runtime: Runtime): PushwireClient {
  let _o: ResolvedOptions;
  let _events: Emitter<ClientEvents>;
  const _internal = createEmitter<Record<'alive' | 'welcome' | 'message' | 'closed', undefined>>();
  const _inbox = createInbox<PushMessage>();
  let _timers: Timers<'retry' | 'connect'>;
  let _delivery: Delivery;
  let _keeper: StateKeeper;
  let _webpush: WebPush;
  const _requests = createRequests();
  const _disposers: Disposer[] = [];
  let _state: ConnectionState = 'idle';
  let _session: Session | undefined;
  let _gen = 0;
  let _attempt = 0;
  /** Index in the server list of the server being tried or used. */
  let _server = 0;
  let _openedAt: number | undefined;
  let _tuner: HeartbeatTuner;
  let _hbRestored = false;
  let _online = true;
  let _closing: Promise<void> | undefined;

  function _setState(to: ConnectionState): void {
    const from = _state;
    if (from === to) return;
    if (!canTransition(from, to)) {
      _report(new PushwireError('ERR_INTERNAL', `invalid state transition ${from} → ${to}`));
      return;
    }
    _state = to;
    _events.emit('state', { from, to });
  }

  function _connect(): void {
    if (_state === 'closed') return;
    _timers.clear('retry');
    _dropSession('reconnecting');
    const gen = ++_gen;
    _setState('connecting');
    _timers.set('connect', _o.connectTimeout, () =>
      _lost(gen, {
        kind: 'failure',
        error: new TimeoutError(`no welcome within ${_o.connectTimeout} ms`),
      }),
    );
    _prepare().then(
      (creds) => {
        if (gen === _gen) _openSession(gen, creds);
      },
      (error: unknown) => {
        if (gen === _gen) _lost(gen, lossOfException(error));
      },
    );
  }

  function _openSession(gen: number, creds: Credentials): void {
    try {
      _session = openSession(_o.transport, _endpoints().ws, _o.clock, _sessionEvents(gen, creds));
    } catch (error) {
      _lost(gen, lossOfException(error));
    }
  }

  function _sessionEvents(gen: number, creds: Credentials): SessionEvents {
    return {
      open: () => {
        const cursors = _delivery.beginSession();
        const hello = {
          t: 'hello' as const,
          v: PROTOCOL_VERSION,
          device: creds.deviceId,
          token: creds.token,
        };
        _session?.send({ ...hello, cursors, hb: _tuner.hello() });
      },
      frame: (frame) => {
        if (gen === _gen) _onFrame(gen, frame);
      },
      invalid: (error) => _report(error),
      proof: (idle) => {
        if (_tuner.evidence(true, idle)) _retune();
      },
      alive: () => _internal.emit('alive', undefined),
      lost: (loss) => {
        if (gen === _gen) _onSessionLost(gen, loss);
      },
      acksForPing: () => _delivery.takeAcks(),
    };
  }

  function _onFrame(gen: number, f: ServerFrame): void {
    switch (f.t) {
      case 'welcome':
        return _onWelcome(f);
      case 'msg':
        return _webpush.receive(f);
      case 'subbed':
        return _requests.answer(f, _delivery.subscribed(f.topic, f.seq));
      case 'unsubbed':
        return _requests.answer(f, _delivery.unsubscribed(f.topic));
      case 'goaway':
        return _lost(gen, { kind: 'goaway', after: f.reconnectAfter });
      case 'error':
        return _onErrorFrame(gen, f);
    }
  }

  function _onWelcome(w: WelcomeFrame): void {
    _timers.clear('connect');
    _openedAt = _o.clock.now();
    _tuner.welcome(w.hb); // never ping less often than the server accepted
    _requests.welcome(w.topics);
    _setState('open');
    const session = _session;
    if (_state !== 'open' || session === undefined) return; // a state listener moved on
    session.heartbeat(_tuner.effective, _o.heartbeat.pongTimeout);
    _delivery.sessionOpened();
    for (const frame of _requests.frames()) session.send(frame);
    _internal.emit('welcome', undefined);
  }

  function _onErrorFrame(gen: number, f: ErrorFrame): void {
    const text = `${f.code}: ${f.message}`;
    const opts = { serverCode: f.code };
    const refused = f.code === 'FORBIDDEN' ? new ForbiddenError(text, opts) : new RequestError(text, opts);
    if (f.ref !== undefined && _requests.reject(f.ref, refused) && !f.fatal) return;
    if (f.fatal) _lost(gen, lossOfErrorFrame(f));
    else _report(new ProtocolViolationError(`the server reported ${text}`, opts));
  }

  function _onSessionLost(gen: number, loss: SessionLoss): void {
    if (isSilentDeath(loss) && _state === 'open') _tuner.evidence(false, loss.idle);
    _lost(gen, lossOfSession(loss, _o.heartbeat.pongTimeout));
  }

  /** The attempt or session `gen` ended: report, then back off (or close, when fatal). */
  function _lost(gen: number, loss: Loss): void {
    if (gen !== _gen || _state === 'closed') return;
    _gen++;
    _timers.clear('connect');
    if (loss.kind === 'goaway') _delivery.flushAcks(); // the draining server keeps fresh cursors
    _dropSession(loss.kind === 'goaway' ? 'goaway' : '');
    if (loss.kind === 'fatal') {
      _closing ??= _shutdown(loss.error);
      return;
    }
    if (loss.kind !== 'goaway') _report(loss.error);
    // With several servers, the next attempt goes to the next one (the failed one may be down).
    _server = (_server + 1) % _o.servers.length;
    const { backoff, clock, random } = _o;
    const stable = _openedAt !== undefined && clock.now() - _openedAt >= backoff.stableAfter;
    if (stable) _attempt = 0;
    _openedAt = undefined;
    const delay = retryDelay(loss, _attempt, backoff, random);
    if (loss.kind !== 'goaway') _attempt++; // a drain is not a failure
    _setState('backoff');
    if (_state === 'backoff' && _online) _timers.set('retry', delay, () => _connect());
  }

  /** Endpoints of the server being tried or used. */
  function _endpoints() {
    return _o.servers[_server]!;
  }

  function _dropSession(reason: string): void {
    const session = _session;
    _session = undefined;
    session?.close(1000, reason);
    _delivery.endSession();
  }

  async function _shutdown(error: PushwireError | undefined): Promise<void> {
    if (_state === 'closed') return;
    _gen++;
    _timers.clearAll();
    _dropSession('client closed');
    if (error) _report(error);
    _setState('closed');
    _internal.emit('closed', undefined);
    _requests.rejectAll(new ClosedError());
    _inbox.end();
    for (const dispose of _disposers.splice(0)) dispose();
    _delivery.dispose();
    _webpush.dispose();
    await _keeper.persister.stop();
    _events.clear();
    _internal.clear();
  }

  /** Loads the stored state (once), restores the heartbeat memory, and gets the credentials. */
  async function _prepare(): Promise<Credentials> {
    await _keeper.load();
    if (!_hbRestored) {
      _hbRestored = true;
      _tuner.use(_tuner.networkKey, _keeper.learned(_tuner.networkKey));
    }
    return _keeper.credentials();
  }

  function _deliver(m: PushMessage): void {
    _events.emit('message', m);
    if (m.notification !== undefined) _events.emit('notification', m as NotificationMessage);
    _inbox.push(m);
    _internal.emit('message', undefined);
  }

  function _sendAcks(acks: Cursors): void {
    const s = _session;
    if (s === undefined) return;
    const pingDue = !s.pinging && s.pingDueIn() <= _o.ackDelay;
    if (pingDue)
      s.ping({ acks }); // a ping is due anyway: it carries them
    else s.send({ t: 'ack', acks });
  }

  /** Applies the heartbeat intervals to the open session. */
  function _retune(): void {
    if (_session !== undefined && _state === 'open') _tuner.retune(_session);
  }

  function _request(t: 'sub' | 'unsub', topic: string): Promise<void> {
    if (_state === 'closed') return Promise.reject(new ClosedError());
    if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) {
      return Promise.reject(
        new RequestError(`invalid topic ${JSON.stringify(topic)}`, { serverCode: 'BAD_TOPIC' }),
      );
    }
    const { frame, done } = _requests.add(t, topic);
    if (_state === 'open') _session?.send(frame);
    return done;
  }

  function _wakeHost(): WakeHost {
    return {
      clock: _o.clock,
      state: () => _state,
      ping: () => {
        const s = _session;
        return s !== undefined && _state === 'open' && (s.pinging || s.ping());
      },
      connectNow: () => {
        if (_state === 'idle' || _state === 'backoff') _connect();
      },
      reconnectNow: () => {
        if (_state === 'open') _connect();
      },
      pongTimeoutMs: _o.heartbeat.pongTimeout * 1000,
      settled: () => !_keeper.persister.busy && _delivery.settled && _webpush.idle,
      on: (event, fn) => _internal.on(event, fn),
      holdImmediateAcks: () => _delivery.holdImmediate(),
    };
  }

  function _report(error: PushwireError): void {
    _events.emit('error', error);
  }

  const client: PushwireClient = {
    get state(): ConnectionState {
      return _state;
    },
    get deviceId(): string | undefined {
      return _keeper.deviceId;
    },
    get topics(): string[] {
      return _requests.topics;
    },
    get networkKey(): string {
      return _tuner.networkKey;
    },
    get heartbeatInterval(): number {
      return _tuner.wanted;
    },
    get cursors(): Cursors {
      return _delivery.cursors;
    },
    on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): Disposer {
      return _events.on(event, listener);
    },
    [Symbol.asyncIterator](): AsyncIterableIterator<PushMessage> {
      return _inbox.iterator();
    },
    subscribe(topic: string): Promise<void> {
      return _request('sub', topic);
    },
    unsubscribe(topic: string): Promise<void> {
      return _request('unsub', topic);
    },
    pushSubscribe(options?: PushSubscribeOptions): Promise<WebPushSubscription> {
      return _webpush.subscribe(options);
    },
    pushUnsubscribe(): Promise<boolean> {
      return _webpush.unsubscribe();
    },
    getPushSubscription(): Promise<WebPushSubscription | null> {
      return _webpush.current();
    },
    async setWakeToken(token: WakeTokenOptions | null): Promise<void> {
      if (_state === 'closed') throw new ClosedError();
      await sendWakeToken({ keeper: _keeper, http: () => _endpoints().http, fetch: o.fetch }, token);
    },
    async rotateToken(): Promise<void> {
      if (_state === 'closed') throw new ClosedError();
      await _keeper.rotate((creds) => rotateToken({ http: () => _endpoints().http, fetch: o.fetch }, creds));
    },
    close(): Promise<void> {
      _closing ??= _shutdown(undefined);
      return _closing;
    },
    setBackground(on: boolean): void {
      if (!_tuner.background(on)) return;
      _delivery.setBackground(on);
      _retune();
    },
    networkChanged(key?: string): void {
      if (_state === 'closed') return;
      if (key !== undefined && key !== _tuner.networkKey) _tuner.use(key, _keeper.learned(key));
      _online = true;
      _attempt = 0;
      if (_state !== 'idle') _connect();
    },
    setOnline(online: boolean): void {
      if (_state === 'closed') return;
      if (online) {
        if (!_online) client.networkChanged();
        return;
      }
      _online = false;
      if (_state === 'backoff') _timers.clear('retry');
    },
    wake(deadlineMs: number): Promise<WakeReport> {
      return runWake(_wakeHost(), deadlineMs, _o.wakeQuietPeriod);
    },
  };

  const o = resolveOptions(options, () => runtime.defaultTransport());
  _o = o;
  _events = createEmitter((event, error) => {
    if (event !== 'error') _report(new ListenerError(String(event), error));
  });
  _timers = createTimers(o.clock);
  _delivery = createDelivery({
    clock: o.clock,
    windowSize: o.dedupeWindow,
    ackDelay: o.ackDelay,
    ackBatch: o.ackBatch,
    deliver: (m) => _deliver(m),
    persist: () => _keeper.save(),
    sendAcks: (acks) => _sendAcks(acks),
  });
  _keeper = createStateKeeper({
    store: o.storage,
    clock: o.clock,
    delivery: _delivery,
    credentials: o.credentials,
    register: o.register,
    http: () => _endpoints().http,
    fetch: o.fetch,
    onError: (error) => _report(error),
  });
  _webpush = createWebPush({
    keeper: _keeper,
    delivery: _delivery,
    http: () => _endpoints().http,
    fetch: o.fetch,
    closed: () => _state === 'closed',
    report: (error) => _report(error),
    fail: (error) => (_state === 'backoff' ? _report(error) : _lost(_gen, { kind: 'failure', error })),
  });
  _tuner = createTuner({
    policy: o.heartbeat,
    clock: o.clock,
    networkKey: o.networkKey,
    remember: (key, learned) => _keeper.remember(key, learned),
  });
  const detach = runtime.attach?.(client);
  if (detach) _disposers.push(detach);
  microtask(() => {
    if (_state === 'idle') _connect();
  });
  return client;
}
