import { QuotaError, StoreError } from './errors.js';
import type { EntryRow } from './schema.js';
import type { OpResult, OpValues, WriteOp } from './sqlite-writer.js';
import type { NewEntry, PublishBatchItem, PublishResult } from './types.js';

/*
 * The SQLite store's write queue: what waits for a batch, the soft writes riding with it, the
 * batch in flight. Internal to sqlite.ts.
 */

/** A publish waiting for its batch, payloads already serialised. */
export interface QueuedPublish {
  id: string;
  entries: NewEntry[];
  limits: PublishBatchItem['limits'];
  rows: Omit<EntryRow, 'seq' | 'prev_seq'>[];
  resolve(value: PublishResult): void;
  reject(err: unknown): void;
}

/** Any other write waiting for its batch; `op.head` is filled in when the batch is formed. */
export interface QueuedOp {
  op: WriteOp;
  resolve(value: OpValues[WriteOp['k']]): void;
  reject(err: unknown): void;
}

export type Queued = { publish: QueuedPublish; op?: undefined } | { op: QueuedOp; publish?: undefined };

/**
 * Writes that need no fsync of their own: acked cursors and last-seen times. They wait in memory
 * (read methods see them) and are written with the next batch. A batch holding only these commits
 * with `synchronous = NORMAL`: it survives a kill -9 of the process but the last ones may be lost
 * on power loss, which only causes redelivery (the SDK dedupes by id). One promise serves every
 * caller of a batch.
 */
export class SoftWrites {
  readonly acks = new Map<string, Map<string, number>>();
  readonly touches = new Map<string, number>();
  private settle: { resolve(): void; reject(err: unknown): void } | undefined;
  private promise: Promise<void> | undefined;

  get empty(): boolean {
    return this.promise === undefined && this.acks.size === 0 && this.touches.size === 0;
  }

  written(): Promise<void> {
    this.promise ??= new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    return this.promise;
  }

  resolve(): void {
    this.settle?.resolve();
  }

  reject(err: unknown): void {
    this.settle?.reject(err);
  }
}

/** The batch the writer is committing. */
export interface InFlight {
  items: Queued[];
  /** Results of its publishes, by item index (known when the batch was formed), or why refused. */
  results: (PublishResult | QuotaError | undefined)[];
  /** Heads its publishes started from: restored when the batch fails. */
  rollback: Map<string, number>;
  soft: SoftWrites;
  publishes: number;
  started: number;
}

/**
 * What a committed batch says of the disk (readiness): the error of an op that failed for I/O;
 * `wrote` when it wrote data (a publish, a device, a subscription); undefined when it says nothing
 * (sweeps and barriers may write nothing).
 */
export function writeOutcome(batch: InFlight, results: OpResult[]): StoreError | 'wrote' | undefined {
  let wrote = false;
  let next = 0;
  for (let i = 0; i < batch.items.length; i++) {
    const { publish, op } = batch.items[i]!;
    if (publish) {
      if (!(batch.results[i] instanceof QuotaError)) wrote = true;
      continue;
    }
    const result = results[next++];
    if (result && !result.ok && result.code === 'STORE_IO')
      return new StoreError(result.code, result.message);
    if (op.op.k !== 'sweep' && op.op.k !== 'barrier' && op.op.k !== 'maxPages') wrote = true;
  }
  return wrote ? 'wrote' : undefined;
}
