/**
 * The UnifiedPush D-Bus specification (DBUS_0.3.0: `org.unifiedpush.Distributor2` and
 * `org.unifiedpush.Connector2`), the parts a distributor checks. Pure: no I/O.
 */

/** Well-known name this distributor owns on the bus. */
export const DISTRIBUTOR_NAME = 'org.unifiedpush.Distributor.pushwire';
export const DISTRIBUTOR_PATH = '/org/unifiedpush/Distributor';
export const DISTRIBUTOR_INTERFACE = 'org.unifiedpush.Distributor2';
export const CONNECTOR_PATH = '/org/unifiedpush/Connector';
export const CONNECTOR_INTERFACE = 'org.unifiedpush.Connector2';

/** Why a registration failed, as the spec names it. */
export type FailureReason = 'INTERNAL_ERROR' | 'NETWORK' | 'ACTION_REQUIRED' | 'VAPID_REQUIRED';

/** A valid `Register` request. */
export interface RegisterRequest {
  service: string;
  token: string;
  description?: string;
  vapid?: string;
}

const MAX_TOKEN_BYTES = 100;
const MAX_DESCRIPTION_BYTES = 100;
/** A D-Bus well-known bus name (reverse DNS application id), at most 255 characters. */
const BUS_NAME = /^[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+$/;
/** A P-256 public key, uncompressed, base64url: 87 characters (65 bytes), starting with B (0x04). */
const VAPID = /^B[A-Za-z0-9_-]{86}$/;

/** The string value of an `a{sv}` entry, or undefined when absent or not a string. */
export function stringArg(args: Record<string, unknown>, key: string): string | undefined {
  const v = args[key] as { signature?: string; value?: unknown } | undefined;
  return v && v.signature === 's' && typeof v.value === 'string' ? v.value : undefined;
}

/** A valid connection token: 1 to 100 bytes of UTF-8. */
export function isToken(token: string | undefined): token is string {
  return token !== undefined && token.length > 0 && Buffer.byteLength(token) <= MAX_TOKEN_BYTES;
}

/**
 * Reads a `Register` argument dictionary. Invalid required fields fail the registration; an
 * optional field that does not follow the spec (a description too long) is ignored, as the spec
 * asks, except a malformed VAPID key, which fails it (registering without the key the app asked
 * for would let anyone push to it).
 */
export function parseRegister(
  args: Record<string, unknown>,
): { ok: true; request: RegisterRequest } | { ok: false; reason: FailureReason; why: string } {
  const service = stringArg(args, 'service');
  const token = stringArg(args, 'token');
  if (service === undefined || service.length > 255 || !BUS_NAME.test(service))
    return { ok: false, reason: 'INTERNAL_ERROR', why: 'service must be the app’s D-Bus name' };
  if (!isToken(token)) return { ok: false, reason: 'INTERNAL_ERROR', why: 'token must be 1 to 100 bytes' };
  const description = stringArg(args, 'description');
  const vapid = stringArg(args, 'vapid');
  if (vapid !== undefined && !VAPID.test(vapid))
    return {
      ok: false,
      reason: 'INTERNAL_ERROR',
      why: 'vapid must be a base64url P-256 public key (87 characters)',
    };
  return {
    ok: true,
    request: {
      service,
      token,
      ...(description !== undefined &&
        Buffer.byteLength(description) <= MAX_DESCRIPTION_BYTES && { description }),
      ...(vapid !== undefined && { vapid }),
    },
  };
}
