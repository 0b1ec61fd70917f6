import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { deviceStream, topicStream } from '@pushwire/protocol';
import Database from 'better-sqlite3';
import { type Quota, QuotaError, StoreError, type StoreErrorCode } from './errors.js';
import { type DeviceRow, prepareStatements } from './schema.js';
import { SqliteDeliveryLog } from './sqlite-delivery.js';

/**
 * The SQLite store's writer: a `worker_threads` worker with its own connection that runs every
 * write of the store, one transaction (one fsync) per batch, so the WAL write and its fsync never
 * block the event loop. The main thread assigns stream seqs and sends at most one batch at a time;
 * it keeps a read connection (WAL lets it read beside this writer).
 * @internal
 */

/**
 * Publishes of a batch, flat (primitives clone far faster than objects between threads): per
 * publish `id, ts, exp, count`, then per entry `stream, seq, id, data, notification, urgency,
 * collapseKey, ts, exp` (payloads already JSON, seqs assigned by the main thread, prevSeq = seq - 1).
 */
export type PublishWrites = (string | number | null)[];

/** Fields per publish and per entry in {@link PublishWrites}. */
export const PUBLISH_FIELDS = 4;
export const ENTRY_FIELDS = 9;

/** One write of a batch other than a publish. */
export type WriteOp =
  /** `maxPerUser`: refuse them all when a user would have more devices. */
  | { k: 'devices'; rows: DeviceRow[]; maxPerUser?: number; maxPerKey?: number }
  /** `head`: the device stream's head, kept so a device created again with this id continues it. */
  | { k: 'deleteDevice'; id: string; head: number }
  /** `head`: the topic stream's head at this point of the batch (the new subscriber's cursor). */
  | { k: 'subscribe'; device: string; topic: string; head: number; maxTopics?: number }
  /**
   * Writes about 4 KB (a large publish's worth) and deletes it again in the same savepoint: fails
   * as a publish would while the disk (or the database's page limit) is full. Readiness probe.
   */
  | { k: 'probe' }
  /** Test hook: `PRAGMA max_page_count` of the writer's connection (a full disk, for real). */
  | { k: 'maxPages'; pages: number }
  | { k: 'unsubscribe'; device: string; topic: string }
  | { k: 'sweep'; now: number; before: number }
  /** Writes nothing: settles once everything before it is committed. */
  | { k: 'barrier' };

export interface WriteBatch {
  /** Batch number, echoed in the reply. */
  n: number;
  /** Commit with `synchronous = FULL` (fsync); false when the batch holds only soft writes. */
  durable: boolean;
  /** Time of the acks (delivery log). */
  now: number;
  /** The publishes, in call order. */
  publishes: PublishWrites;
  /** The other writes, in call order: `[p, op]` runs after the first `p` publishes. */
  ops: [number, WriteOp][];
  /** Acked cursors, cumulative: [device, stream, seq]. */
  acks: [string, string, number][];
  /** Last-seen times: [device, lastSeen]. */
  touches: [string, number][];
}

/** What each kind of write answers once committed. */
export interface OpValues {
  devices: undefined;
  deleteDevice: undefined;
  /** The new subscriber's cursor; `existing`: the device already followed the topic. */
  subscribe: { cursor: number; existing: boolean };
  probe: undefined;
  /** The `max_page_count` in effect. */
  maxPages: number;
  unsubscribe: undefined;
  /** Entries removed. */
  sweep: number;
  barrier: undefined;
}

/** Results of the batch's `ops`, in order. */
export type OpResult =
  | { ok: true; value?: OpValues[WriteOp['k']] }
  | { ok: false; code: StoreErrorCode; message: string; quota?: Quota };

export type WriteReply =
  | {
      n: number;
      ok: true;
      results: OpResult[];
      /** Entries marked collapsed, and entries the sweeps removed past their expiry. */
      collapsed: number;
      expired: number;
      /** Time spent in the transaction, fsync included. */
      ms: number;
    }
  | { n: number; ok: false; code: StoreErrorCode; message: string };

export type WriterMessage = WriteBatch | { k: 'close' };

/** Posted once, when the writer's connection is open and its statements prepared. */
export interface WriterReady {
  ready: true;
}

export interface WriterData {
  path: string;
}

const errorOf = (err: unknown): { code: StoreErrorCode; message: string; quota?: Quota } =>
  err instanceof QuotaError
    ? { code: err.code, message: err.message, quota: err.quota }
    : err instanceof StoreError
      ? { code: err.code, message: err.message }
      : { code: 'STORE_IO', message: `write failed: ${err instanceof Error ? err.message : String(err)}` };

function startWriter(port: NonNullable<typeof parentPort>, data: WriterData): void {
  const db = new Database(data.path, { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  const stmts = prepareStatements(db);
  const deliveries = new SqliteDeliveryLog(db);
  let durable = true;
  let collapsed = 0;
  let expired = 0;

  const setDurable = (value: boolean) => {
    if (durable === value) return;
    db.pragma(`synchronous = ${value ? 'FULL' : 'NORMAL'}`);
    durable = value;
  };

  /** Appends the publish at `at` of `w`; returns where the next one starts. */
  const append = (w: PublishWrites, at: number): number => {
    const id = w[at] as string;
    const ts = w[at + 1] as number;
    const exp = w[at + 2] as number;
    const count = w[at + 3] as number;
    let i = at + PUBLISH_FIELDS;
    let entries = '[';
    for (let n = 0; n < count; n++, i += ENTRY_FIELDS) {
      const stream = w[i] as string;
      const seq = w[i + 1] as number;
      const collapseKey = w[i + 6] as string | null;
      if (collapseKey !== null) collapsed += stmts.collapse.run(stream, collapseKey).changes;
      stmts.appendEntry.run(
        stream,
        seq,
        seq - 1,
        w[i + 2],
        w[i + 3],
        w[i + 4],
        w[i + 5],
        collapseKey,
        w[i + 7],
        w[i + 8],
      );
      entries += `${n > 0 ? ',' : ''}{"stream":${JSON.stringify(stream)},"seq":${seq}}`;
    }
    stmts.insertPublish.run({ id, entries: `${entries}]`, ts, exp });
    return i;
  };

  /** A write of its own (savepoint): its failure fails it alone. */
  const isolated = db.transaction((op: WriteOp): OpValues[WriteOp['k']] => {
    switch (op.k) {
      case 'devices':
        for (const row of op.rows) {
          stmts.insertDevice.run(row);
          if (row.user !== null && op.maxPerUser !== undefined) {
            if (stmts.countUserDevices.get(row.user)! > op.maxPerUser) {
              throw new QuotaError(
                'TOO_MANY_DEVICES',
                `user ${JSON.stringify(row.user)} may have ${op.maxPerUser} devices`,
              );
            }
          }
          if (row.key_id !== null) {
            const count = stmts.countKeyDevice.get(row.key_id)!;
            if (op.maxPerKey && count > op.maxPerKey) {
              throw new QuotaError(
                'DEVICE_QUOTA_EXCEEDED',
                `register key ${JSON.stringify(row.key_id)} may have ${op.maxPerKey} devices`,
              );
            }
          }
        }
        return undefined;
      case 'deleteDevice': {
        const stream = deviceStream(op.id);
        if (op.head > 0) stmts.setHead.run(stream, op.head);
        stmts.deleteStreamEntries.run(stream);
        stmts.deleteDeviceWebPush.run(op.id);
        stmts.uncountKeyDevice.run(op.id);
        stmts.deleteDevice.run(op.id);
        return undefined;
      }
      case 'subscribe': {
        if (!stmts.getDevice.get(op.device)) {
          throw new StoreError('STORE_NOT_FOUND', `no device ${JSON.stringify(op.device)}`);
        }
        const stream = topicStream(op.topic);
        if (stmts.isSubscribed.get(op.device, op.topic)) {
          return { cursor: stmts.cursorOf.get(op.device, stream) ?? 0, existing: true };
        }
        if (op.maxTopics !== undefined && stmts.countTopics.get(op.device)! >= op.maxTopics) {
          throw new QuotaError('TOO_MANY_TOPICS', `a device may follow ${op.maxTopics} topics`);
        }
        stmts.subscribe.run(op.device, op.topic);
        stmts.setCursor.run(op.device, stream, op.head);
        return { cursor: op.head, existing: false };
      }
      case 'unsubscribe':
        stmts.unsubscribe.run(op.device, op.topic);
        stmts.deleteCursor.run(op.device, topicStream(op.topic));
        return undefined;
      case 'sweep': {
        // Heads live in the entries themselves; keep them before entries go.
        stmts.saveHeads.run();
        let removed = 0;
        for (const { stream, seq } of stmts.deviceCursors.all()) {
          removed += stmts.sweepAcked.run(stream, seq).changes;
        }
        const gone = stmts.sweepExpired.run(op.now).changes;
        expired += gone;
        removed += gone + stmts.sweepCollapsed.run().changes;
        stmts.sweepPublishes.run(op.before);
        deliveries.sweep(op.before);
        return removed;
      }
      case 'probe':
        stmts.insertPublish.run({ id: '\u0000probe', entries: 'x'.repeat(4096), ts: 0, exp: 0 });
        stmts.deletePublish.run('\u0000probe');
        return undefined;
      case 'maxPages':
        return db.pragma(`max_page_count = ${Math.max(1, Math.floor(op.pages))}`, { simple: true }) as number;
      case 'barrier':
        return undefined;
    }
  });

  const commit = db.transaction((batch: WriteBatch): OpResult[] => {
    const results: OpResult[] = [];
    const w = batch.publishes;
    let at = 0;
    let done = 0;
    // A failed publish throws, failing the whole batch: later seqs of its streams would follow a hole.
    for (const [before, op] of batch.ops) {
      for (; done < before; done++) at = append(w, at);
      try {
        results.push({ ok: true, value: isolated(op) });
      } catch (err) {
        results.push({ ok: false, ...errorOf(err) });
      }
    }
    while (at < w.length) at = append(w, at);
    for (const [device, stream, seq] of batch.acks) {
      deliveries.recordAck(device, stream, seq, batch.now);
      stmts.ackCursor.run({ device, stream, seq });
    }
    for (const [device, lastSeen] of batch.touches) stmts.touchDevice.run(lastSeen, device);
    return results;
  });

  port.postMessage({ ready: true } satisfies WriterReady);
  port.on('message', (msg: WriterMessage) => {
    if ('k' in msg) {
      db.close();
      port.close();
      return;
    }
    const started = performance.now();
    collapsed = 0;
    expired = 0;
    let reply: WriteReply;
    try {
      setDurable(msg.durable);
      const results = commit(msg);
      reply = { n: msg.n, ok: true, results, collapsed, expired, ms: performance.now() - started };
    } catch (err) {
      reply = { n: msg.n, ok: false, ...errorOf(err) };
    }
    port.postMessage(reply);
  });
}

if (parentPort && (workerData as { pushwireWriter?: WriterData } | undefined)?.pushwireWriter) {
  startWriter(parentPort, (workerData as { pushwireWriter: WriterData }).pushwireWriter);
}
