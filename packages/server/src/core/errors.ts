/** Codes of the errors the hub throws (see {@link HubError}). */
export type HubErrorCode =
  /** A publish to a device that does not exist. */
  | 'UNKNOWN_DEVICE'
  /** A message would create more stream entries than its request may still create. */
  | 'TOO_MANY_ENTRIES'
  /** A publish target naming none of device, user, topic. */
  | 'BAD_REQUEST';

/**
 * A refusal by the delivery core. It knows nothing of HTTP: the API layer maps each code to a status
 * in one place (`api/http-errors.ts`).
 */
export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }
}
