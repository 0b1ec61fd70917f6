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
  private readonly _store: StateStore;
  private readonly _snapshot: () => Snapshot<M>;
  private readonly _onSaved: (meta: M) => void;
  private readonly _onError: (error: PushwireError) => void;
  private readonly _timers: Timers<'retry'>;
  private _dirty = false;
  private _running = false;
  private _stopping = false;
  private _stopped = false;
  private _waiters: Waiter[] = [];
  /** Called when the save loop goes idle. */
  private _idle: (() => void)[] = [];

  constructor(options: {
    store: StateStore;
    clock: Clock;
    snapshot: () => Snapshot<M>;
    onSaved: (meta: M) => void;
    onError: (error: PushwireError) => void;
  }) {
    this._store = options.store;
    this._snapshot = options.snapshot;
    this._onSaved = options.onSaved;
    this._onError = options.onError;
    this._timers = new Timers(options.clock);
  }

  /** True while a save is pending or in flight. */
  get busy(): boolean {
    return this._dirty || this._running;
  }

  /**
   * Marks the state changed. Resolves once a save that includes this change is durable; rejects
   * if that save fails (a retry follows).
   */
  request(): Promise<void> {
    if (this._stopped) return Promise.resolve(); // closed: nothing changes any more
    this._dirty = true;
    const done = new Promise<void>((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (!this._running) {
      this._running = true;
      queueMicrotask(() => void this._run());
    }
    return done;
  }

  /** Lets pending changes reach storage (one last attempt, no retries), then stops. Never rejects. */
  async stop(): Promise<void> {
    this._stopping = true;
    this._timers.clearAll();
    this._restart();
    if (this._running) await new Promise<void>((resolve) => this._idle.push(resolve));
    this._stopped = true;
  }

  private async _run(): Promise<void> {
    this._timers.clear('retry');
    while (this._dirty) {
      this._dirty = false;
      const waiters = this._waiters;
      this._waiters = [];
      const snap = this._snapshot();
      try {
        await this._store.save(snap.state);
      } catch (e) {
        const error = toPushwireError(
          e,
          (cause) => new StorageError('saving the client state failed', { cause }),
        );
        this._dirty = true;
        this._running = false;
        for (const w of waiters) w.reject(error);
        this._onError(error);
        if (!this._stopping) this._timers.set('retry', RETRY_MS, () => this._restart());
        this._wentIdle();
        return;
      }
      this._onSaved(snap.meta);
      for (const w of waiters) w.resolve();
    }
    this._running = false;
    this._wentIdle();
  }

  private _wentIdle(): void {
    for (const resolve of this._idle.splice(0)) resolve();
  }

  private _restart(): void {
    if (this._running || !this._dirty) return;
    this._running = true;
    void this._run();
  }
}
