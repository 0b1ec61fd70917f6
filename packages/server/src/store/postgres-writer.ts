import type pg from 'pg';
import { appendBatch, type BatchOutcome, type PendingPublish } from './postgres-batch.js';
import { transaction } from './postgres-conn.js';
import type { PublishResult } from './types.js';

/**
 * Group commit of the PostgreSQL store's publishes: calls queue, and a batch (up to `maxSize`)
 * commits in one transaction of a fixed number of statements, while the next gathers. At most
 * `maxInflight` batches run at once per store. Every promise settles after its batch's COMMIT.
 * @internal
 */
export class PostgresWriter {
  private queue: { p: PendingPublish; resolve: (r: PublishResult) => void; reject: (e: unknown) => void }[] =
    [];
  private running = 0;
  private scheduled = false;

  constructor(
    private readonly pool: pg.Pool,
    /** The record of a publish committed elsewhere (its id was taken meanwhile). */
    private readonly recordOf: (id: string) => Promise<PublishResult>,
    private readonly maxSize = 512,
    private readonly maxInflight = 2,
  ) {}

  publish(p: PendingPublish): Promise<PublishResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ p, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.maxInflight || this.queue.length === 0) return;
    this.scheduled = true;
    // The next macrotask: publishes of the same tick share the batch.
    setImmediate(() => {
      this.scheduled = false;
      if (this.running >= this.maxInflight || this.queue.length === 0) return;
      const batch = this.queue.splice(0, this.maxSize);
      this.running++;
      void this.commit(batch).finally(() => {
        this.running--;
        this.schedule();
      });
      this.schedule();
    });
  }

  private async commit(batch: PostgresWriter['queue']): Promise<void> {
    let todo = batch;
    while (todo.length > 0) {
      let outcomes: BatchOutcome[];
      try {
        outcomes = await transaction(this.pool, async (client) => {
          const done = await appendBatch(
            client,
            todo.map((t) => t.p),
          );
          if (done.retry) throw new Retry(done.outcomes);
          return done.outcomes;
        });
      } catch (err) {
        if (!(err instanceof Retry)) {
          for (const t of todo) t.reject(err);
          return;
        }
        // Ids committed elsewhere meanwhile: those answer that record; the rest run again.
        const rest: PostgresWriter['queue'] = [];
        err.outcomes.forEach((o, i) => {
          const t = todo[i]!;
          if ('taken' in o) this.recordOf(t.p.item.id).then(t.resolve, t.reject);
          else rest.push(t);
        });
        todo = rest;
        continue;
      }
      outcomes.forEach((o, i) => {
        const t = todo[i]!;
        if ('ok' in o) t.resolve(o.ok);
        else if ('seen' in o) t.resolve({ record: o.seen, duplicate: true, appended: [] });
        else if ('refused' in o) t.reject(o.refused);
        else if ('sameAs' in o) {
          const first = outcomes[o.sameAs]!;
          if ('ok' in first) t.resolve({ record: first.ok.record, duplicate: true, appended: [] });
          else this.publish(t.p).then(t.resolve, t.reject); // the first was refused: try it on its own
        }
      });
      return;
    }
  }
}

/** Rolls a batch back when some of its ids were taken meanwhile. */
class Retry extends Error {
  constructor(readonly outcomes: BatchOutcome[]) {
    super('publish ids taken meanwhile');
  }
}
