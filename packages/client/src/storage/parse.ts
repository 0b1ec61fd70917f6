import { StorageError } from '../errors.js';
import type { LearnedHeartbeat } from '../heartbeat.js';
import type { ClientState, StoredWebPush } from './types.js';

/**
 * Turns stored JSON back into a {@link ClientState}. Malformed entries are dropped (a cursor that
 * is not a non-negative integer, a non-string id); a value that is not a state at all throws a
 * {@link StorageError} rather than being silently replaced (it may hold the device's credentials).
 */
export function parseState(text: string, where: string): ClientState {
  let value: unknown;
  let cause: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    cause = error;
  }
  if (!isObject(value)) throw new StorageError(`${where} does not hold a Pushwire client state`, { cause });
  const { cursors, dedupe, credentials: c, heartbeat, webpush: wp } = value;
  const state: ClientState = {
    cursors: {},
    dedupe: Array.isArray(dedupe) ? dedupe.filter((x): x is string => typeof x === 'string') : [],
  };
  if (isObject(cursors)) {
    for (const [k, seq] of Object.entries(cursors)) {
      if (Number.isSafeInteger(seq) && (seq as number) >= 0) state.cursors[k] = seq as number;
    }
  }
  if (isObject(c) && typeof c.deviceId === 'string' && typeof c.token === 'string') {
    state.credentials = { deviceId: c.deviceId, token: c.token };
  }
  if (isObject(heartbeat)) {
    const out: Record<string, LearnedHeartbeat> = {};
    state.heartbeat = out;
    for (const [key, l] of Object.entries(heartbeat)) {
      if (!isObject(l) || !isPositive(l.good) || !isPositive(l.interval)) continue;
      const learned: LearnedHeartbeat = { good: l.good, interval: l.interval };
      if (isPositive(l.ceiling)) learned.ceiling = l.ceiling;
      if (isPositive(l.settledAt)) learned.settledAt = l.settledAt;
      out[key] = learned;
    }
  }
  const webpush = storedWebPush(wp);
  if (webpush) state.webpush = webpush;
  return state;
}

/** A deep copy through JSON, so a stored state never aliases the client's live one. */
export function copyState(state: ClientState): ClientState {
  return JSON.parse(JSON.stringify(state)) as ClientState;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A stored Web Push subscription, or undefined when any part is missing or of the wrong type. */
function storedWebPush(v: unknown): StoredWebPush | undefined {
  if (!isObject(v) || !isObject(v.keys)) return undefined;
  const { subscriptionId, endpoint, expirationTime, applicationServerKey, keys } = v;
  const { p256dh, auth, d } = keys;
  const strings = [subscriptionId, endpoint, p256dh, auth, d];
  if (!strings.every((s) => typeof s === 'string' && s.length > 0)) return undefined;
  if (expirationTime !== null && !isPositive(expirationTime)) return undefined;
  if (applicationServerKey !== undefined && typeof applicationServerKey !== 'string') return undefined;
  return {
    subscriptionId,
    endpoint,
    expirationTime,
    keys: { p256dh, auth, d },
    ...(applicationServerKey !== undefined && { applicationServerKey }),
  } as StoredWebPush;
}

function isPositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}
