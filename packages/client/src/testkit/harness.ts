import { createPushwireClient, type PushwireClient } from '../client.js';
import type { PushwireError } from '../errors.js';
import type { PushMessage } from '../message.js';
import type { ClientOptions } from '../options.js';
import type { StateChange } from '../state.js';
import { memoryStorage } from '../storage/memory.js';
import type { ClientState, StateStore } from '../storage/types.js';
import { FakeClock } from './fake-clock.js';
import { FakeServer, type FakeServerOptions } from './fake-server.js';

/** A state store that records every save and can be slow or fail, in virtual time. */
export class RecordingStore implements StateStore {
  readonly saves: ClientState[] = [];
  /** Virtual times and cursors of completed saves. */
  readonly done: { at: number; cursors: Record<string, number> }[] = [];
  loads = 0;
  /** Saves that will fail before saves succeed again. */
  failNext = 0;
  #state: ClientState | undefined;
  readonly #clock: FakeClock;
  readonly #delay: number;

  constructor(clock: FakeClock, options: { delay?: number; initial?: ClientState } = {}) {
    this.#clock = clock;
    this.#delay = options.delay ?? 0;
    this.#state = options.initial && structuredClone(options.initial);
  }

  get state(): ClientState | undefined {
    return this.#state && structuredClone(this.#state);
  }

  async load(): Promise<ClientState | undefined> {
    this.loads++;
    return this.state;
  }

  save(state: ClientState): Promise<void> {
    const copy = structuredClone(state);
    this.saves.push(copy);
    const finish = (): void => {
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('disk full');
      }
      this.#state = copy;
      this.done.push({ at: this.#clock.now(), cursors: copy.cursors });
    };
    if (this.#delay === 0) return Promise.resolve().then(finish);
    return new Promise((resolve, reject) =>
      this.#clock.setTimeout(() => {
        try {
          finish();
          resolve();
        } catch (e) {
          reject(e);
        }
      }, this.#delay),
    );
  }
}

export interface Harness {
  clock: FakeClock;
  server: FakeServer;
  client: PushwireClient;
  storage: StateStore;
  messages: PushMessage[];
  states: StateChange[];
  errors: PushwireError[];
  /** Ids of the messages the app saw, in order. */
  ids(): string[];
  /** A second client on the same server, clock and (by default) storage: a restarted app. */
  restart(options?: Partial<ClientOptions>): Harness;
}

/**
 * A client wired to a {@link FakeServer} in virtual time, with device `dev1`/`tok`, `random`
 * fixed at 0.5 and everything it emits collected.
 */
export function harness(
  options: {
    server?: FakeServerOptions;
    client?: Partial<ClientOptions>;
    clock?: FakeClock;
    serverInstance?: FakeServer;
  } = {},
): Harness {
  const clock = options.clock ?? options.serverInstance?.clock ?? new FakeClock();
  const server = options.serverInstance ?? new FakeServer(clock, options.server);
  const storage = options.client?.storage ?? memoryStorage();
  const client = createPushwireClient(
    {
      url: 'http://push.test',
      credentials: { deviceId: 'dev1', token: 'tok' },
      clock,
      random: () => 0.5,
      ...options.client,
      transport: options.client?.transport ?? server.transport,
      storage,
    },
    { defaultTransport: () => server.transport },
  );
  const messages: PushMessage[] = [];
  const states: StateChange[] = [];
  const errors: PushwireError[] = [];
  client.on('message', (m) => messages.push(m));
  client.on('state', (s) => states.push(s));
  client.on('error', (e) => errors.push(e));
  return {
    clock,
    server,
    client,
    storage,
    messages,
    states,
    errors,
    ids: () => messages.map((m) => m.id),
    restart: (more = {}) =>
      harness({ serverInstance: server, client: { ...options.client, storage, ...more } }),
  };
}

/** Virtual time until the client is open. */
export async function untilOpen(h: Harness, maxMs?: number): Promise<number> {
  return h.clock.until(() => h.client.state === 'open', maxMs);
}

/** Advances virtual time until `promise` settles; returns its value (or throws its error). */
export async function settle<T>(clock: FakeClock, promise: Promise<T>, maxMs = 3_600_000): Promise<T> {
  let done = false;
  const watched = promise.finally(() => {
    done = true;
  });
  watched.catch(() => {});
  await clock.until(() => done, maxMs);
  return watched;
}
