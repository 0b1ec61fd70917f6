import { HubError, type HubErrorCode } from '../core/errors.js';
import { HttpError } from '../errors.js';
import { type Quota, QuotaError } from '../store/errors.js';

/** HTTP status of each store quota: a full backlog is storage (507), the others are counts (429). */
const QUOTA_STATUS: Record<Quota, number> = {
  TOO_MANY_TOPICS: 429,
  TOO_MANY_DEVICES: 429,
  DEVICE_BACKLOG_FULL: 507,
};

/** HTTP status of each refusal of the delivery core. */
const HUB_STATUS: Record<HubErrorCode, number> = {
  UNKNOWN_DEVICE: 404,
  TOO_MANY_ENTRIES: 413,
  BAD_REQUEST: 400,
};

/**
 * The one place where domain errors (the hub's {@link HubError}, the store's {@link QuotaError})
 * become HTTP answers (`{error: code, message}` with the code's status); any other error unchanged.
 */
export function httpErrorOf(err: unknown): unknown {
  if (err instanceof QuotaError) return new HttpError(QUOTA_STATUS[err.quota], err.quota, err.message);
  if (err instanceof HubError) return new HttpError(HUB_STATUS[err.code], err.code, err.message);
  return err;
}
