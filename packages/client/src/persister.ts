import type { Clock } from './clock.js';
import { type PushwireError, StorageError, toPushwireError } from './errors.js';
import type { ClientState, StateStore } from './storage/types.js';
import { Timers } from './timers.js';

/** Delay before retrying a failed save. */
const RETRY_MS = 1000;

/** A snapshot to save, with whatever the owner wants back when it is durable. */
export interface Snapshot<M> {
  state: ClientState;
  meta: M;
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Coalesces saves: at most one save in flight; changes made meanwhile are saved together by the
 * next one. A burst of messages handled in one tick costs one save. `onSaved` runs with the
 * snapshot's meta once it is durable (that is where acknowledgements are released).
 */
export class Persister<M> {
  readonly #store: StateStore;
  readonly #snapshot: () => Snapshot<M>;
  readonly #onSaved: (meta: M) => void;
  readonly #onError: (error: PushwireError) => void;
  readonly #timers: Timers<'retry'>;
  #dirty = false;
  #running = false;
  #stopping = false;
  #stopped = false;
  #waiters: Waiter[] = [];
  /** Called when the save loop goes idle. */
  #idle: (() => void)[] = [];

  constructor(options: {
    store: StateStore;
    clock: Clock;
    snapshot: () => Snapshot<M>;
    onSaved: (meta: M) => void;
    onError: (error: PushwireError) => void;
  }) {
    this.#store = options.store;
    this.#snapshot = options.snapshot;
    this.#onSaved = options.onSaved;
    this.#onError = options.onError;
    this.#timers = new Timers(options.clock);
  }

  /** True while a save is pending or in flight. */
  get busy(): boolean {
    return this.#dirty || this.#running;
  }

  /**
   * Marks the state changed. Resolves once a save that includes this change is durable; rejects
   * if that save fails (a retry follows).
   */
  request(): Promise<void> {
    if (this.#stopped) return Promise.resolve(); // closed: nothing changes any more
    this.#dirty = true;
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#running) {
      this.#running = true;
      queueMicrotask(() => void this.#run());
    }
    return done;
  }

  /** Lets pending changes reach storage (one last attempt, no retries), then stops. Never rejects. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#timers.clearAll();
    this.#restart();
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#stopped = true;
  }

  async #run(): Promise<void> {
    this.#timers.clear('retry');
    while (this.#dirty) {
      this.#dirty = false;
      const waiters = this.#waiters;
      this.#waiters = [];
      const snap = this.#snapshot();
      try {
        await this.#store.save(snap.state);
      } catch (e) {
        const error = toPushwireError(
          e,
          (cause) => new StorageError('saving the client state failed', { cause }),
        );
        this.#dirty = true;
        this.#running = false;
        for (const w of waiters) w.reject(error);
        this.#onError(error);
        if (!this.#stopping) this.#timers.set('retry', RETRY_MS, () => this.#restart());
        this.#wentIdle();
        return;
      }
      this.#onSaved(snap.meta);
      for (const w of waiters) w.resolve();
    }
    this.#running = false;
    this.#wentIdle();
  }

  #wentIdle(): void {
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  #restart(): void {
    if (this.#running || !this.#dirty) return;
    this.#running = true;
    void this.#run();
  }
}
