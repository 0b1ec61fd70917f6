import type pg from 'pg';
import { StoreError } from './errors.js';
import { isUnavailable, toPostgresStoreError } from './postgres-conn.js';

/**
 * How the PostgreSQL store runs its operations: refused after close, tracked so that close waits
 * for them, errors mapped to store errors, and the server's reachability noted (readiness): once a
 * query finds it unreachable, it is probed each second until a query succeeds.
 * @internal
 */
export class PostgresRunner {
  private readonly inflight = new Set<Promise<unknown>>();
  private up = true;
  private shut = false;
  /** While the server is unreachable: probes it each second, so readiness comes back without traffic. */
  private probe: NodeJS.Timeout | undefined;

  constructor(private readonly pool: pg.Pool) {}

  /** False while the server is known to be unreachable. */
  get reachable(): boolean {
    return this.up;
  }

  /** Set by {@link close}: every later operation rejects with `STORE_CLOSED`. */
  get closed(): boolean {
    return this.shut;
  }

  /** Refuses new operations, stops probing and waits for the operations in flight. */
  async close(): Promise<void> {
    this.shut = true;
    this.stopProbe();
    await Promise.all([...this.inflight]);
  }

  /** Runs one operation: refuses it after close, tracks it for close, maps errors, notes reachability. */
  run<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (this.shut) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    const result = op().then(
      (value) => {
        this.up = true;
        return value;
      },
      (err: unknown) => {
        if (isUnavailable(err)) this.down();
        else if (!(err instanceof StoreError) || err.code !== 'STORE_UNAVAILABLE') this.up = true;
        throw toPostgresStoreError(err, `${what} failed`);
      },
    );
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(settled);
    void settled.then(() => this.inflight.delete(settled));
    return result;
  }

  /** The server was found unreachable: not ready until a query succeeds (probed each second). */
  private down(): void {
    this.up = false;
    if (this.probe || this.shut) return;
    this.probe = setInterval(() => {
      if (this.shut) return this.stopProbe();
      this.pool.query('SELECT 1').then(
        () => {
          this.up = true;
          this.stopProbe();
        },
        () => {},
      );
    }, 1000);
    this.probe.unref();
  }

  private stopProbe(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }
}
