import { StorageError } from '../errors.js';
import type { LearnedHeartbeat } from '../heartbeat.js';
import type { ClientState, Credentials, StoredWebPush } from './types.js';

/**
 * Turns stored JSON back into a {@link ClientState}. Malformed entries are dropped (a cursor that
 * is not a non-negative integer, a non-string id); a value that is not a state at all throws a
 * {@link StorageError} rather than being silently replaced (it may hold the device's credentials).
 */
export function parseState(text: string, where: string): ClientState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new StorageError(`${where} does not hold valid JSON`, { cause });
  }
  if (!isObject(value)) throw new StorageError(`${where} does not hold a Pushwire client state`);
  const state: ClientState = { cursors: cursors(value.cursors), dedupe: ids(value.dedupe) };
  const creds = credentials(value.credentials);
  if (creds) state.credentials = creds;
  const hb = heartbeat(value.heartbeat);
  if (hb) state.heartbeat = hb;
  const wp = webpush(value.webpush);
  if (wp) state.webpush = wp;
  return state;
}

/** A deep copy through JSON, so a stored state never aliases the client's live one. */
export function copyState(state: ClientState): ClientState {
  return JSON.parse(JSON.stringify(state)) as ClientState;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function cursors(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isObject(v)) return out;
  for (const [k, seq] of Object.entries(v)) {
    if (typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0) out[k] = seq;
  }
  return out;
}

function ids(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function credentials(v: unknown): Credentials | undefined {
  if (!isObject(v) || typeof v.deviceId !== 'string' || typeof v.token !== 'string') return undefined;
  return { deviceId: v.deviceId, token: v.token };
}

function heartbeat(v: unknown): Record<string, LearnedHeartbeat> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, LearnedHeartbeat> = {};
  for (const [key, l] of Object.entries(v)) {
    if (!isObject(l) || !isPositive(l.good) || !isPositive(l.interval)) continue;
    const learned: LearnedHeartbeat = { good: l.good, interval: l.interval };
    if (isPositive(l.ceiling)) learned.ceiling = l.ceiling;
    if (isPositive(l.settledAt)) learned.settledAt = l.settledAt;
    out[key] = learned;
  }
  return out;
}

/** A stored Web Push subscription, or undefined when any part is missing or of the wrong type. */
function webpush(v: unknown): StoredWebPush | undefined {
  if (!isObject(v) || !isObject(v.keys)) return undefined;
  const { subscriptionId, endpoint, expirationTime, applicationServerKey, keys } = v;
  const strings = [subscriptionId, endpoint, keys.p256dh, keys.auth, keys.d];
  if (!strings.every((s) => typeof s === 'string' && s.length > 0)) return undefined;
  if (expirationTime !== null && !isPositive(expirationTime)) return undefined;
  if (applicationServerKey !== undefined && typeof applicationServerKey !== 'string') return undefined;
  const out: StoredWebPush = {
    subscriptionId: subscriptionId as string,
    endpoint: endpoint as string,
    expirationTime: expirationTime as number | null,
    keys: { p256dh: keys.p256dh as string, auth: keys.auth as string, d: keys.d as string },
  };
  if (applicationServerKey !== undefined) out.applicationServerKey = applicationServerKey;
  return out;
}

function isPositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}
