import type { BusSink } from './types.js';

/** After a catch-up that could not read the store, try again this much later, this many times. */
const RETRY_MS = 1000;
const MAX_RETRIES = 30;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Full catch-ups of a node's sessions from the store (after a reconnect, and periodically), shared
 * by the cluster buses: one runs at a time; a request while one runs makes it run once more (what
 * happened meanwhile is read too); while the store cannot be read it retries, within a bound.
 */
export class CatchUp {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly sink: () => BusSink | undefined,
    private readonly closed: () => boolean,
    /** Called for each run (the bus counts them). */
    private readonly onRun: () => void,
  ) {}

  /** Asks for a full catch-up: starts one, or marks the running one to go once more. */
  request(): void {
    const sink = this.sink();
    if (this.closed() || !sink) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      for (let tries = 0; tries <= MAX_RETRIES && !this.closed(); tries++) {
        this.again = false;
        this.onRun();
        const failed = await sink.resync().catch(() => 1);
        if (failed === 0 && !this.again) return;
        if (failed > 0) await sleep(RETRY_MS);
      }
    })().finally(() => {
      this.running = undefined;
    });
  }
}
