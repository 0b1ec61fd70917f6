import {
  type Cursors,
  type ErrorFrame,
  PROTOCOL_VERSION,
  type ServerFrame,
  TOPIC_PATTERN,
  type WelcomeFrame,
} from '@pushwire/protocol';
import { Delivery } from './delivery.js';
import { type Disposer, Emitter } from './emitter.js';
import {
  ClosedError,
  ListenerError,
  ProtocolViolationError,
  PushwireError,
  RequestError,
  TimeoutError,
} from './errors.js';
import { Inbox } from './inbox.js';
import { StateKeeper } from './keeper.js';
import {
  isSilentDeath,
  type Loss,
  lossOfErrorFrame,
  lossOfException,
  lossOfSession,
  retryDelay,
} from './losses.js';
import type { NotificationMessage, PushMessage } from './message.js';
import { type ClientOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { Requests } from './requests.js';
import { Session, type SessionEvents, type SessionLoss } from './session.js';
import { type ConnectionState, canTransition, type StateChange } from './state.js';
import type { Credentials } from './storage/types.js';
import { Timers } from './timers.js';
import type { Transport } from './transport/types.js';
import { HeartbeatTuner } from './tuner.js';
import { runWake, type WakeHost, type WakeReport } from './wake.js';
import { type PushSubscribeOptions, WebPush, type WebPushSubscription } from './webpush.js';

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
 * `#setState` is the only writer of the state and emits every change as `state`.
 * @example
 * const c = createClient({ url: 'https://push.example.com', register: { apiKey }, storage });
 * c.on('message', (m) => console.log(m.stream, m.seq, m.data));
 * await c.subscribe('news');
 */
export class PushwireClient implements AsyncIterable<PushMessage> {
  readonly #o: ResolvedOptions;
  readonly #events: Emitter<ClientEvents>;
  readonly #internal = new Emitter<Record<'alive' | 'welcome' | 'message' | 'closed', undefined>>();
  readonly #inbox = new Inbox<PushMessage>();
  readonly #timers: Timers<'retry' | 'connect'>;
  readonly #delivery: Delivery;
  readonly #keeper: StateKeeper;
  readonly #webpush: WebPush;
  readonly #requests = new Requests();
  readonly #disposers: Disposer[] = [];
  #state: ConnectionState = 'idle';
  #session: Session | undefined;
  #gen = 0;
  #attempt = 0;
  /** Index in the server list of the server being tried or used. */
  #server = 0;
  #openedAt: number | undefined;
  readonly #tuner: HeartbeatTuner;
  #hbRestored = false;
  #online = true;
  #closing: Promise<void> | undefined;

  constructor(options: ClientOptions, runtime: Runtime) {
    const o = resolveOptions(options, () => runtime.defaultTransport());
    this.#o = o;
    this.#events = new Emitter((event, error) => {
      if (event !== 'error') this.#report(new ListenerError(String(event), error));
    });
    this.#timers = new Timers(o.clock);
    this.#delivery = new Delivery({
      clock: o.clock,
      windowSize: o.dedupeWindow,
      ackDelay: o.ackDelay,
      ackBatch: o.ackBatch,
      deliver: (m) => this.#deliver(m),
      persist: () => this.#keeper.save(),
      sendAcks: (acks) => this.#sendAcks(acks),
    });
    this.#keeper = new StateKeeper({
      store: o.storage,
      clock: o.clock,
      delivery: this.#delivery,
      credentials: o.credentials,
      register: o.register,
      http: () => this.#endpoints.http,
      fetch: o.fetch,
      onError: (error) => this.#report(error),
    });
    this.#webpush = new WebPush({
      keeper: this.#keeper,
      delivery: this.#delivery,
      http: () => this.#endpoints.http,
      fetch: o.fetch,
      closed: () => this.#state === 'closed',
      report: (error) => this.#report(error),
    });
    this.#tuner = new HeartbeatTuner({
      policy: o.heartbeat,
      clock: o.clock,
      networkKey: o.networkKey,
      remember: (key, learned) => this.#keeper.remember(key, learned),
    });
    const detach = runtime.attach?.(this);
    if (detach) this.#disposers.push(detach);
    queueMicrotask(() => {
      if (this.#state === 'idle') this.#connect();
    });
  }

  /** Current connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The device id, once credentials are known (given, loaded or registered). */
  get deviceId(): string | undefined {
    return this.#keeper.deviceId;
  }

  /** Topics the device is subscribed to, as of the last welcome / subbed / unsubbed. */
  get topics(): string[] {
    return this.#requests.topics;
  }

  /** Current network key (see {@link PushwireClient.networkChanged}). */
  get networkKey(): string {
    return this.#tuner.networkKey;
  }

  /** Seconds between pings the heartbeat policy wants now (the session may be capped by the server). */
  get heartbeatInterval(): number {
    return this.#tuner.wanted;
  }

  /** Current cursors (stream → highest seq processed); a copy. */
  get cursors(): Cursors {
    return this.#delivery.cursors;
  }

  /** Listens to an event; returns the disposer that removes the listener. */
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): Disposer {
    return this.#events.on(event, listener);
  }

  /** Messages as an async iterator (from now on, buffered until read); ends when the client closes. */
  [Symbol.asyncIterator](): AsyncIterableIterator<PushMessage> {
    return this.#inbox.iterator();
  }

  /**
   * Subscribes the device to a topic (persisted server-side: it survives reconnects). Sent now
   * if open, else once open. Resolves on `subbed`, after the topic's cursor is saved.
   */
  subscribe(topic: string): Promise<void> {
    return this.#request('sub', topic);
  }

  /** Unsubscribes the device from a topic. Resolves on `unsubbed`. */
  unsubscribe(topic: string): Promise<void> {
    return this.#request('unsub', topic);
  }

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
  pushSubscribe(options?: PushSubscribeOptions): Promise<WebPushSubscription> {
    return this.#webpush.subscribe(options);
  }

  /** Deletes the Web Push subscription: its endpoint answers 410 from then on; the keys are forgotten. */
  pushUnsubscribe(): Promise<boolean> {
    return this.#webpush.unsubscribe();
  }

  /** The stored Web Push subscription, or null (no network request). */
  getPushSubscription(): Promise<WebPushSubscription | null> {
    return this.#webpush.current();
  }

  /**
   * Closes the client from any state: closes the socket (1000) without sending anything more,
   * rejects pending requests, ends iterators, removes environment listeners. Resolves once the
   * last state is saved.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown(undefined);
    return this.#closing;
  }

  /**
   * Foreground/background. In background acks leave without coalescing delay (the OS may suspend
   * the app any moment) and the policy's background interval applies (fixed: `backgroundInterval`).
   */
  setBackground(on: boolean): void {
    if (!this.#tuner.background(on)) return;
    this.#delivery.setBackground(on);
    this.#retune();
  }

  /**
   * The network changed (or may have): drop the current socket, which may be dead, and reconnect
   * at once without backoff. With `key`, switch the heartbeat memory to that network.
   */
  networkChanged(key?: string): void {
    if (this.#state === 'closed') return;
    if (key !== undefined && key !== this.#tuner.networkKey) this.#tuner.use(key, this.#keeper.learned(key));
    this.#online = true;
    this.#attempt = 0;
    if (this.#state !== 'idle') this.#connect();
  }

  /** Network availability (browser `online`/`offline`). Offline: no reconnect attempts until online. */
  setOnline(online: boolean): void {
    if (this.#state === 'closed') return;
    if (online) {
      if (!this.#online) this.networkChanged();
      return;
    }
    this.#online = false;
    if (this.#state === 'backoff') this.#timers.clear('retry');
  }

  /**
   * For an OS keep-alive or background handler with `deadlineMs` left: ping (or reconnect now),
   * drain the replay, and resolve with a report strictly before the deadline.
   */
  wake(deadlineMs: number): Promise<WakeReport> {
    return runWake(this.#wakeHost(), deadlineMs, this.#o.wakeQuietPeriod);
  }

  // ── state machine ────────────────────────────────────────────────────────────────────────────

  #setState(to: ConnectionState): void {
    const from = this.#state;
    if (from === to) return;
    if (!canTransition(from, to)) {
      this.#report(new PushwireError('ERR_INTERNAL', `invalid state transition ${from} → ${to}`));
      return;
    }
    this.#state = to;
    this.#events.emit('state', { from, to });
  }

  #connect(): void {
    if (this.#state === 'closed') return;
    this.#timers.clear('retry');
    this.#dropSession('reconnecting');
    const gen = ++this.#gen;
    this.#setState('connecting');
    this.#timers.set('connect', this.#o.connectTimeout, () =>
      this.#lost(gen, {
        kind: 'failure',
        error: new TimeoutError(`no welcome within ${this.#o.connectTimeout} ms`),
      }),
    );
    this.#prepare().then(
      (creds) => {
        if (gen === this.#gen) this.#openSession(gen, creds);
      },
      (error: unknown) => {
        if (gen === this.#gen) this.#lost(gen, lossOfException(error));
      },
    );
  }

  #openSession(gen: number, creds: Credentials): void {
    try {
      this.#session = new Session(
        this.#o.transport,
        this.#endpoints.ws,
        this.#o.clock,
        this.#sessionEvents(gen, creds),
      );
    } catch (error) {
      this.#lost(gen, lossOfException(error));
    }
  }

  #sessionEvents(gen: number, creds: Credentials): SessionEvents {
    return {
      open: () => {
        const cursors = this.#delivery.beginSession();
        const hello = {
          t: 'hello' as const,
          v: PROTOCOL_VERSION,
          device: creds.deviceId,
          token: creds.token,
        };
        this.#session?.send({ ...hello, cursors, hb: this.#tuner.hello() });
      },
      frame: (frame) => {
        if (gen === this.#gen) this.#onFrame(gen, frame);
      },
      invalid: (error) => this.#report(error),
      proof: (idle) => {
        if (this.#tuner.evidence(true, idle)) this.#retune();
      },
      alive: () => this.#internal.emit('alive', undefined),
      lost: (loss) => {
        if (gen === this.#gen) this.#onSessionLost(gen, loss);
      },
      acksForPing: () => this.#delivery.takeAcks(),
    };
  }

  #onFrame(gen: number, f: ServerFrame): void {
    switch (f.t) {
      case 'welcome':
        return this.#onWelcome(f);
      case 'msg':
        return this.#webpush.receive(f);
      case 'subbed':
        return this.#requests.answer(f, this.#delivery.subscribed(f.topic, f.seq));
      case 'unsubbed':
        return this.#requests.answer(f, this.#delivery.unsubscribed(f.topic));
      case 'goaway':
        return this.#lost(gen, { kind: 'goaway', after: f.reconnectAfter });
      case 'error':
        return this.#onErrorFrame(gen, f);
    }
  }

  #onWelcome(w: WelcomeFrame): void {
    this.#timers.clear('connect');
    this.#openedAt = this.#o.clock.now();
    this.#tuner.welcome(w.hb); // never ping less often than the server accepted
    this.#requests.welcome(w.topics);
    this.#setState('open');
    const session = this.#session;
    if (this.#state !== 'open' || session === undefined) return; // a state listener moved on
    session.heartbeat(this.#tuner.effective, this.#o.heartbeat.pongTimeout);
    this.#delivery.sessionOpened();
    for (const frame of this.#requests.frames()) session.send(frame);
    this.#internal.emit('welcome', undefined);
  }

  #onErrorFrame(gen: number, f: ErrorFrame): void {
    const text = `${f.code}: ${f.message}`;
    const opts = { serverCode: f.code };
    if (f.ref !== undefined && this.#requests.reject(f.ref, new RequestError(text, opts)) && !f.fatal) return;
    if (f.fatal) this.#lost(gen, lossOfErrorFrame(f));
    else this.#report(new ProtocolViolationError(`the server reported ${text}`, opts));
  }

  #onSessionLost(gen: number, loss: SessionLoss): void {
    if (isSilentDeath(loss) && this.#state === 'open') this.#tuner.evidence(false, loss.idle);
    this.#lost(gen, lossOfSession(loss, this.#o.heartbeat.pongTimeout));
  }

  /** The attempt or session `gen` ended: report, then back off (or close, when fatal). */
  #lost(gen: number, loss: Loss): void {
    if (gen !== this.#gen || this.#state === 'closed') return;
    this.#gen++;
    this.#timers.clear('connect');
    if (loss.kind === 'goaway') this.#delivery.flushAcks(); // the draining server keeps fresh cursors
    this.#dropSession(loss.kind === 'goaway' ? 'goaway' : '');
    if (loss.kind === 'fatal') {
      this.#closing ??= this.#shutdown(loss.error);
      return;
    }
    if (loss.kind !== 'goaway') this.#report(loss.error);
    // With several servers, the next attempt goes to the next one (the failed one may be down).
    this.#server = (this.#server + 1) % this.#o.servers.length;
    const { backoff, clock, random } = this.#o;
    const stable = this.#openedAt !== undefined && clock.now() - this.#openedAt >= backoff.stableAfter;
    if (stable) this.#attempt = 0;
    this.#openedAt = undefined;
    const delay = retryDelay(loss, this.#attempt, backoff, random);
    if (loss.kind !== 'goaway') this.#attempt++; // a drain is not a failure
    this.#setState('backoff');
    if (this.#state === 'backoff' && this.#online) this.#timers.set('retry', delay, () => this.#connect());
  }

  /** Endpoints of the server being tried or used. */
  get #endpoints() {
    return this.#o.servers[this.#server]!;
  }

  #dropSession(reason: string): void {
    const session = this.#session;
    this.#session = undefined;
    session?.close(1000, reason);
    this.#delivery.endSession();
  }

  async #shutdown(error: PushwireError | undefined): Promise<void> {
    if (this.#state === 'closed') return;
    this.#gen++;
    this.#timers.clearAll();
    this.#dropSession('client closed');
    if (error) this.#report(error);
    this.#setState('closed');
    this.#internal.emit('closed', undefined);
    this.#requests.rejectAll(new ClosedError());
    this.#inbox.end();
    for (const dispose of this.#disposers.splice(0)) dispose();
    this.#delivery.dispose();
    this.#webpush.dispose();
    await this.#keeper.persister.stop();
    this.#events.clear();
    this.#internal.clear();
  }

  // ── credentials, delivery, acks, heartbeat ──────────────────────────────────────────────────

  /** Loads the stored state (once), restores the heartbeat memory, and gets the credentials. */
  async #prepare(): Promise<Credentials> {
    await this.#keeper.load();
    if (!this.#hbRestored) {
      this.#hbRestored = true;
      this.#tuner.use(this.#tuner.networkKey, this.#keeper.learned(this.#tuner.networkKey));
    }
    return this.#keeper.credentials();
  }

  #deliver(m: PushMessage): void {
    this.#events.emit('message', m);
    if (m.notification !== undefined) this.#events.emit('notification', m as NotificationMessage);
    this.#inbox.push(m);
    this.#internal.emit('message', undefined);
  }

  #sendAcks(acks: Cursors): void {
    const s = this.#session;
    if (s === undefined) return;
    const pingDue = !s.pinging && s.pingDueIn() <= this.#o.ackDelay;
    if (pingDue)
      s.ping({ acks }); // a ping is due anyway: it carries them
    else s.send({ t: 'ack', acks });
  }

  /** Applies the heartbeat intervals to the open session. */
  #retune(): void {
    if (this.#session !== undefined && this.#state === 'open') this.#tuner.retune(this.#session);
  }

  #request(t: 'sub' | 'unsub', topic: string): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new ClosedError());
    if (typeof topic !== 'string' || !TOPIC_PATTERN.test(topic)) {
      return Promise.reject(
        new RequestError(`invalid topic ${JSON.stringify(topic)}`, { serverCode: 'BAD_TOPIC' }),
      );
    }
    const { frame, done } = this.#requests.add(t, topic);
    if (this.#state === 'open') this.#session?.send(frame);
    return done;
  }

  #wakeHost(): WakeHost {
    return {
      clock: this.#o.clock,
      state: () => this.#state,
      ping: () => {
        const s = this.#session;
        return s !== undefined && this.#state === 'open' && (s.pinging || s.ping());
      },
      connectNow: () => {
        if (this.#state === 'idle' || this.#state === 'backoff') this.#connect();
      },
      reconnectNow: () => {
        if (this.#state === 'open') this.#connect();
      },
      pongTimeoutMs: this.#o.heartbeat.pongTimeout * 1000,
      settled: () => !this.#keeper.persister.busy && this.#delivery.settled && this.#webpush.idle,
      on: (event, fn) => this.#internal.on(event, fn),
      holdImmediateAcks: () => this.#delivery.holdImmediate(),
    };
  }

  #report(error: PushwireError): void {
    this.#events.emit('error', error);
  }
}
