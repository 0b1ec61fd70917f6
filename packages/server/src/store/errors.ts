/**
 * Stable codes of {@link StoreError}:
 * - `STORE_CLOSED`: the store was closed; nothing more can be read or written.
 * - `STORE_IO`: the engine failed (disk full, I/O error, corrupt file…); the write did not happen.
 * - `STORE_INVALID`: the input cannot be stored (e.g. data that JSON cannot serialise).
 * - `STORE_NOT_FOUND`: the operation names a device that does not exist.
 * - `STORE_SCHEMA`: the database was written by a newer Pushwire (schema version too high).
 * - `STORE_BACKUP`: a file given as a backup is not one (not SQLite, not made by `pushwire backup`,
 *   or damaged).
 * - `STORE_QUOTA`: the write would pass a configured bound ({@link QuotaError} says which).
 * - `STORE_UNAVAILABLE`: a networked engine (Redis) cannot be reached now; retry later (HTTP 503).
 *   A write that failed this way may or may not have happened: retrying a publish with its id is safe.
 */
export type StoreErrorCode =
  | 'STORE_BACKUP'
  | 'STORE_CLOSED'
  | 'STORE_IO'
  | 'STORE_INVALID'
  | 'STORE_NOT_FOUND'
  | 'STORE_QUOTA'
  | 'STORE_SCHEMA'
  | 'STORE_UNAVAILABLE';

/** A store operation failed; `code` says why, `cause` carries the engine's own error. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wraps an engine error as `STORE_IO`, passing a StoreError through unchanged. */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new StoreError('STORE_IO', `${what}: ${detail}`, { cause: err });
}

/**
 * Which bound a refused write would have passed:
 * - `TOO_MANY_TOPICS`: topics one device follows;
 * - `TOO_MANY_DEVICES`: devices of one user;
 * - `DEVICE_QUOTA_EXCEEDED`: live devices one `register` key created;
 * - `DEVICE_BACKLOG_FULL`: undelivered messages or bytes on one device's stream.
 */
export type Quota = 'TOO_MANY_TOPICS' | 'TOO_MANY_DEVICES' | 'DEVICE_QUOTA_EXCEEDED' | 'DEVICE_BACKLOG_FULL';

/** A write refused because it would pass a bound; nothing was written. Code `STORE_QUOTA`. */
export class QuotaError extends StoreError {
  constructor(
    readonly quota: Quota,
    message: string,
  ) {
    super('STORE_QUOTA', message);
  }
}
