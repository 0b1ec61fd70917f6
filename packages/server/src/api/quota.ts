import { HttpError } from '../errors.js';
import { type Quota, QuotaError } from '../store/errors.js';

/** HTTP status of each store quota: a full backlog is storage (507), the others are counts (429). */
const STATUS: Record<Quota, number> = {
  TOO_MANY_TOPICS: 429,
  TOO_MANY_DEVICES: 429,
  DEVICE_BACKLOG_FULL: 507,
};

/** The HTTP answer to a store quota refusal (`{error: quota, message}`), or the error unchanged. */
export function httpErrorOf(err: unknown): unknown {
  return err instanceof QuotaError ? new HttpError(STATUS[err.quota], err.quota, err.message) : err;
}
