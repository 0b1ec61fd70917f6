import type { Clock } from './clock.js';
import { type PushwireError, StorageError, toPushwireError } from './errors.js';
import { microtask } from './microtask.js';
import type { ClientState, StateStore } from './storage/types.js';
import { createTimers } from './timers.js';

/** Delay before retrying a failed save. */
const RETRY_MS = 1000;

/** A snapshot to save, with whatever the owner wants back when it is durable. */
export interface Snapshot<M> {
  state: ClientState;
  meta: M;
}

/**
 * Coalesces saves: at most one save in flight; changes made meanwhile are saved together by the
 * next one. A burst of messages handled in one tick costs one save. `onSaved` runs with the
 * snapshot's meta once it is durable (that is where acknowledgements are released).
 */
export interface Persister {
  /** True while a save is pending or in flight. */
  readonly busy: boolean;
  /**
   * Marks the state changed. Resolves once a save that includes this change is durable; rejects
   * if that save fails (a retry follows).
   */
  request(): Promise<void>;
  /** Lets pending changes reach storage (one last attempt, no retries), then stops. Never rejects. */
  stop(): Promise<void>;
}

export function createPersister<M>(options: {
  store: StateStore;
  clock: Clock;
  snapshot: () => Snapshot<M>;
  onSaved: (meta: M) => void;
  onError: (error: PushwireError) => void;
}): Persister {
  const timers = createTimers<'retry'>(options.clock);
  let dirty = false;
  let running = false;
  let stopping = false;
  let stopped = false;
  let waiters: { resolve(): void; reject(error: unknown): void }[] = [];
  /** Called when the save loop goes idle. */
  const idle: (() => void)[] = [];

  const wentIdle = (): void => {
    running = false;
    for (const resolve of idle.splice(0)) resolve();
  };

  const run = async (): Promise<void> => {
    timers.clear('retry');
    while (dirty) {
      dirty = false;
      const batch = waiters;
      waiters = [];
      const snap = options.snapshot();
      try {
        await options.store.save(snap.state);
      } catch (e) {
        const error = toPushwireError(
          e,
          (cause) => new StorageError('saving the client state failed', { cause }),
        );
        dirty = true;
        running = false;
        for (const w of batch) w.reject(error);
        options.onError(error);
        if (!stopping) timers.set('retry', RETRY_MS, restart);
        wentIdle();
        return;
      }
      options.onSaved(snap.meta);
      for (const w of batch) w.resolve();
    }
    wentIdle();
  };

  const restart = (): void => {
    if (running || !dirty) return;
    running = true;
    void run();
  };

  return {
    get busy() {
      return dirty || running;
    },
    request() {
      if (stopped) return Promise.resolve(); // closed: nothing changes any more
      dirty = true;
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      if (!running) {
        running = true;
        microtask(() => void run());
      }
      return done;
    },
    async stop() {
      stopping = true;
      timers.clearAll();
      restart();
      if (running) await new Promise<void>((resolve) => idle.push(resolve));
      stopped = true;
    },
  };
}
