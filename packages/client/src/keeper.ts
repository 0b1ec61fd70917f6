import type { Clock } from './clock.js';
import { checkCredentials, type FetchLike, type RegisterOption, registerDevice } from './credentials.js';
import type { Delivery } from './delivery.js';
import { ConfigError, type PushwireError, StorageError } from './errors.js';
import type { LearnedHeartbeat } from './heartbeat.js';
import { createPersister, type Persister } from './persister.js';
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
export interface StateKeeper {
  readonly persister: Persister;
  /** The device id, once known. */
  readonly deviceId: string | undefined;
  /** The Web Push subscription with its keys (see webpush.ts), once loaded. */
  webpush: StoredWebPush | undefined;
  /** Loads the stored state (once); a failure is fatal (the data may hold the only credentials). */
  load(): Promise<void>;
  /** The device's credentials: given, stored, or registered now (once, shared by concurrent callers). */
  credentials(): Promise<Credentials>;
  /** What was learned about a network's heartbeat. */
  learned(networkKey: string): LearnedHeartbeat | undefined;
  /** Remembers what the heartbeat policy learned about a network (saved if it changed). */
  remember(networkKey: string, learned: LearnedHeartbeat): void;
  /** Saves the state (coalesced). */
  save(): Promise<void>;
  /**
   * Token rotation: `rotate` gets the current credentials and answers the new token, which is
   * kept and saved. Meanwhile {@link StateKeeper.credentials} waits, so a reconnect after the
   * server closed the old session uses the new token.
   */
  rotate(rotate: (current: Credentials) => Promise<string>): Promise<void>;
}

export function createStateKeeper(o: KeeperOptions): StateKeeper {
  let loaded: Promise<void> | undefined;
  let creds: Credentials | undefined;
  let obtaining: Promise<Credentials> | undefined;
  let rotating: Promise<unknown> | undefined;
  let learned: Record<string, LearnedHeartbeat> = {};
  /** A copy through JSON, so the saved state never aliases the live one. */
  const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v));

  const load = async (): Promise<void> => {
    let stored: ClientState | undefined;
    try {
      stored = await o.store.load();
    } catch (cause) {
      throw new StorageError('loading the client state failed', { cause, fatal: true });
    }
    const state = stored ?? emptyState();
    const given = o.credentials;
    if (given && state.credentials && state.credentials.deviceId !== given.deviceId) {
      state.cursors = {}; // another device's cursors, ids and push subscription do not apply
      state.dedupe = [];
      delete state.webpush;
    }
    o.delivery.restore(state.cursors, state.dedupe);
    learned = { ...state.heartbeat };
    keeper.webpush = state.webpush;
    creds = given ?? state.credentials;
    const stale =
      state.credentials?.deviceId !== given?.deviceId || state.credentials?.token !== given?.token;
    if (given && stale) save();
  };

  const obtain = async (): Promise<Credentials> => {
    const reg = o.register;
    if (reg === undefined) {
      throw new ConfigError('no credentials and no `register` option', { fatal: true });
    }
    const got =
      typeof reg === 'function'
        ? checkCredentials(await reg())
        : await registerDevice(o.http(), reg, o.fetch);
    creds = got;
    await save(); // a failure is reported by the persister; connect anyway
    return got;
  };

  /** Saves; a failure is reported by the persister (and retried), so it is not rethrown here. */
  const save = (): Promise<void> => persister.request().catch(() => {});

  const persister = createPersister({
    store: o.store,
    clock: o.clock,
    snapshot: () => {
      const { cursors, dedupe, mark } = o.delivery.capture();
      const state: ClientState = { cursors, dedupe };
      if (creds) state.credentials = { ...creds };
      if (Object.keys(learned).length > 0) state.heartbeat = copy(learned);
      if (keeper.webpush) state.webpush = copy(keeper.webpush);
      return { state, meta: mark };
    },
    onSaved: (mark) => o.delivery.saved(mark),
    onError: o.onError,
  });

  const keeper: StateKeeper = {
    persister,
    get deviceId() {
      return creds?.deviceId;
    },
    webpush: undefined,
    load() {
      loaded ??= load();
      return loaded;
    },
    async credentials() {
      await keeper.load();
      while (rotating) await rotating.catch(() => {});
      if (creds) return creds;
      obtaining ??= obtain().finally(() => {
        obtaining = undefined;
      });
      return obtaining;
    },
    learned: (networkKey) => learned[networkKey],
    remember(networkKey, l) {
      if (JSON.stringify(l) === JSON.stringify(learned[networkKey])) return;
      learned[networkKey] = l;
      save();
    },
    save: () => persister.request(),
    async rotate(fn) {
      const current = await keeper.credentials();
      const run = (async () => {
        const token = await fn(current);
        creds = { deviceId: current.deviceId, token };
        await save();
      })();
      rotating = run;
      try {
        await run;
      } finally {
        if (rotating === run) rotating = undefined;
      }
    },
  };
  return keeper;
}
