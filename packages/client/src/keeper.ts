import type { Clock } from './clock.js';
import { checkCredentials, type FetchLike, type RegisterOption, registerDevice } from './credentials.js';
import type { Delivery, SaveMark } from './delivery.js';
import { ConfigError, type PushwireError, StorageError } from './errors.js';
import type { LearnedHeartbeat } from './heartbeat.js';
import { Persister } from './persister.js';
import {
  type ClientState,
  type Credentials,
  emptyState,
  type StateStore,
  type StoredWebPush,
} from './storage/types.js';

export interface KeeperOptions {
  store: StateStore;
  clock: Clock;
  delivery: Delivery;
  /** Credentials from the options: win over stored ones. */
  credentials: Credentials | undefined;
  register: RegisterOption | undefined;
  /** HTTP base for registration (of the server the client is trying now). */
  http: () => string;
  fetch: FetchLike | undefined;
  onError(error: PushwireError): void;
}

/**
 * Owns what the client persists besides cursors and the window (which live in {@link Delivery}):
 * loading the state once, the device's credentials (given → stored → registered), the learned
 * heartbeat per network and the Web Push subscription; and the coalescing {@link Persister} that
 * saves it all.
 */
export class StateKeeper {
  readonly persister: Persister<SaveMark>;
  private readonly _o: KeeperOptions;
  private _loaded: Promise<void> | undefined;
  private _creds: Credentials | undefined;
  private _obtaining: Promise<Credentials> | undefined;
  private _learned: Record<string, LearnedHeartbeat> = {};
  /** The Web Push subscription with its keys (see webpush.ts), once loaded. */
  webpush: StoredWebPush | undefined;

  constructor(options: KeeperOptions) {
    this._o = options;
    this.persister = new Persister({
      store: options.store,
      clock: options.clock,
      snapshot: () => this._snapshot(),
      onSaved: (mark) => options.delivery.saved(mark),
      onError: options.onError,
    });
  }

  /** The device id, once known. */
  get deviceId(): string | undefined {
    return this._creds?.deviceId;
  }

  /** Loads the stored state (once); a failure is fatal (the data may hold the only credentials). */
  load(): Promise<void> {
    this._loaded ??= this._load();
    return this._loaded;
  }

  /** The device's credentials: given, stored, or registered now (once, shared by concurrent callers). */
  async credentials(): Promise<Credentials> {
    await this.load();
    if (this._creds) return this._creds;
    this._obtaining ??= this._obtain().finally(() => {
      this._obtaining = undefined;
    });
    return this._obtaining;
  }

  /** What was learned about a network's heartbeat. */
  learned(networkKey: string): LearnedHeartbeat | undefined {
    return this._learned[networkKey];
  }

  /** Remembers what the heartbeat policy learned about a network (saved if it changed). */
  remember(networkKey: string, learned: LearnedHeartbeat): void {
    if (JSON.stringify(learned) === JSON.stringify(this._learned[networkKey])) return;
    this._learned[networkKey] = learned;
    this.save().catch(() => {});
  }

  /** Saves the state (coalesced). */
  save(): Promise<void> {
    return this.persister.request();
  }

  private async _load(): Promise<void> {
    let stored: ClientState | undefined;
    try {
      stored = await this._o.store.load();
    } catch (cause) {
      throw new StorageError('loading the client state failed', { cause, fatal: true });
    }
    const state = stored ?? emptyState();
    const given = this._o.credentials;
    if (given && state.credentials && state.credentials.deviceId !== given.deviceId) {
      state.cursors = {}; // another device's cursors, ids and push subscription do not apply
      state.dedupe = [];
      delete state.webpush;
    }
    this._o.delivery.restore(state.cursors, state.dedupe);
    this._learned = { ...state.heartbeat };
    this.webpush = state.webpush;
    this._creds = given ?? state.credentials;
    const stale =
      state.credentials?.deviceId !== given?.deviceId || state.credentials?.token !== given?.token;
    if (given && stale) this.save().catch(() => {});
  }

  private async _obtain(): Promise<Credentials> {
    const reg = this._o.register;
    if (reg === undefined) {
      throw new ConfigError('no credentials in options or storage, and no `register` option', {
        fatal: true,
      });
    }
    const creds =
      typeof reg === 'function'
        ? checkCredentials(await reg())
        : await registerDevice(this._o.http(), reg, this._o.fetch);
    this._creds = creds;
    await this.save().catch(() => {}); // a failure is reported by the persister; connect anyway
    return creds;
  }

  private _snapshot(): { state: ClientState; meta: SaveMark } {
    const { cursors, dedupe, mark } = this._o.delivery.capture();
    const state: ClientState = { cursors, dedupe };
    if (this._creds) state.credentials = { ...this._creds };
    if (Object.keys(this._learned).length > 0) state.heartbeat = JSON.parse(JSON.stringify(this._learned));
    if (this.webpush) state.webpush = JSON.parse(JSON.stringify(this.webpush));
    return { state, meta: mark };
  }
}
