/**
 * Stable codes of {@link StoreError}:
 * - `STORE_CLOSED`: the store was closed; nothing more can be read or written.
 * - `STORE_IO`: the engine failed (disk full, I/O error, corrupt file…); the write did not happen.
 * - `STORE_INVALID`: the input cannot be stored (e.g. data that JSON cannot serialise).
 * - `STORE_NOT_FOUND`: the operation names a device that does not exist.
 * - `STORE_SCHEMA`: the database was written by a newer Pushwire (schema version too high).
 * - `STORE_UNAVAILABLE`: a networked engine (Redis) cannot be reached now; retry later (HTTP 503).
 *   A write that failed this way may or may not have happened: retrying a publish with its id is safe.
 */
export type StoreErrorCode =
  | 'STORE_CLOSED'
  | 'STORE_IO'
  | 'STORE_INVALID'
  | 'STORE_NOT_FOUND'
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
