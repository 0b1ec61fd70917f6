import { type BackoffOptions, type Random, resolveBackoff } from './backoff.js';
import { type Clock, systemClock } from './clock.js';
import type { FetchLike, RegisterOption } from './credentials.js';
import { ConfigError } from './errors.js';
import {
  type AdaptiveHeartbeatOptions,
  adaptiveHeartbeat,
  type FixedHeartbeatOptions,
  fixedHeartbeat,
  type HeartbeatPolicy,
} from './heartbeat.js';
import { memoryStorage } from './storage/memory.js';
import type { Credentials, StateStore } from './storage/types.js';
import type { Transport } from './transport/types.js';
import { type Endpoints, servers } from './url.js';

/**
 * Heartbeat choice: a fixed interval (`{interval, pongTimeout}`, the default `{60, 10}`),
 * `'adaptive'` or `{adaptive: {...}}` for the learning policy, or any {@link HeartbeatPolicy}.
 */
export type HeartbeatOption =
  | 'fixed'
  | 'adaptive'
  | Partial<FixedHeartbeatOptions>
  | { adaptive: true | Partial<AdaptiveHeartbeatOptions> }
  | HeartbeatPolicy;

/** Options of `createClient`. Times are milliseconds unless the name says otherwise. */
export interface ClientOptions {
  /**
   * Server base URL: `http(s)://host:port` or `ws(s)://host:port`, optionally with `/v1/connect`.
   * Or a list of them (the nodes of a cluster): the client starts with the first and moves to the
   * next after each failed attempt or lost session, wrapping around.
   */
  url: string | readonly string[];
  /** The device's credentials. Win over stored ones (a different device resets the stored state). */
  credentials?: Credentials;
  /** How to get credentials when neither `credentials` nor storage has them. */
  register?: RegisterOption;
  /** Where cursors, the dedupe window, credentials and learned heartbeats live. Default: memory. */
  storage?: StateStore;
  /** Heartbeat policy. Default: fixed, 60 s interval, 10 s pong deadline. */
  heartbeat?: HeartbeatOption;
  /** Reconnect backoff. Default `{initial: 500, max: 30000, multiplier: 2, stableAfter: 30000}`. */
  backoff?: Partial<BackoffOptions>;
  /** Socket factory. Default: `ws` in the Node entry, `globalThis.WebSocket` elsewhere. */
  transport?: Transport;
  /** Time source and timers. Default: the real clock. */
  clock?: Clock;
  /** Randomness for jitter. Default `Math.random`. */
  random?: Random;
  /** Name of the current network (e.g. a Wi-Fi SSID hash or "cellular"). Default `'default'`. */
  networkKey?: string;
  /** `fetch` for registration. Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Message ids remembered for deduplication. Default 1000. */
  dedupeWindow?: number;
  /** Wait for more messages before sending an ack frame for the device's own stream. Default 50 ms. */
  ackDelay?: number;
  /** Persisted-but-unacknowledged device-stream messages that trigger an ack at once. Default 100. */
  ackBatch?: number;
  /**
   * Topic-stream acks ride on the next ping (or device ack) and leave on their own at the latest
   * this long after the first of them waited (a deadline drawn between half of it and all of it).
   * A value ≤ `ackDelay` acknowledges topics like the device stream. Default 30 000 ms.
   */
  topicAckDelay?: number;
  /** Deadline from starting a connection to `welcome` (includes registration). Default 15 000 ms. */
  connectTimeout?: number;
  /** `wake()` considers the replay drained after this long without a message. Default 300 ms. */
  wakeQuietPeriod?: number;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  /** One per URL of the `url` option, in order. */
  servers: Endpoints[];
  credentials: Credentials | undefined;
  register: RegisterOption | undefined;
  storage: StateStore;
  heartbeat: HeartbeatPolicy;
  backoff: BackoffOptions;
  transport: Transport;
  clock: Clock;
  random: Random;
  networkKey: string;
  fetch: FetchLike | undefined;
  dedupeWindow: number;
  ackDelay: number;
  ackBatch: number;
  topicAckDelay: number;
  connectTimeout: number;
  wakeQuietPeriod: number;
}

/** The numeric options: default and minimum. */
const NUMBERS = {
  dedupeWindow: [1000, 1],
  ackDelay: [50, 0],
  ackBatch: [100, 1],
  topicAckDelay: [30_000, 0],
  connectTimeout: [15_000, 1],
  wakeQuietPeriod: [300, 0],
} as const;

/** Applies defaults and validates; throws {@link ConfigError}. */
export function resolveOptions(options: ClientOptions, defaultTransport: () => Transport): ResolvedOptions {
  if (options === null || typeof options !== 'object')
    throw new ConfigError('createClient needs an options object');
  const creds = options.credentials;
  if (creds !== undefined && (!nonEmpty(creds.deviceId) || !nonEmpty(creds.token))) {
    throw new ConfigError('credentials need a deviceId and a token');
  }
  const reg = options.register;
  if (reg !== undefined && typeof reg !== 'function' && !nonEmpty(reg?.apiKey)) {
    throw new ConfigError('register needs an apiKey or a function');
  }
  const resolved = {
    servers: servers(options.url),
    credentials: creds,
    register: reg,
    storage: options.storage ?? memoryStorage(),
    heartbeat: wrap(() => resolveHeartbeat(options.heartbeat)),
    backoff: wrap(() => resolveBackoff(options.backoff)),
    transport: options.transport ?? defaultTransport(),
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    networkKey: options.networkKey ?? 'default',
    fetch: options.fetch,
  } as ResolvedOptions;
  for (const [name, [fallback, min]] of Object.entries(NUMBERS)) {
    const v = options[name as keyof typeof NUMBERS] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new ConfigError(`${name} must be a number ≥ ${min}`);
    }
    resolved[name as keyof typeof NUMBERS] = v;
  }
  return resolved;
}

/** Turns the `heartbeat` option into a policy. */
export function resolveHeartbeat(option: HeartbeatOption | undefined): HeartbeatPolicy {
  if (option === undefined || option === 'fixed') return fixedHeartbeat();
  if (option === 'adaptive') return adaptiveHeartbeat();
  if (typeof option !== 'object' || option === null) throw new ConfigError('invalid heartbeat option');
  if ('start' in option && typeof option.start === 'function') return option;
  if ('adaptive' in option) return adaptiveHeartbeat(option.adaptive === true ? {} : option.adaptive);
  return fixedHeartbeat(option as Partial<FixedHeartbeatOptions>);
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}
