import { deviceOfStream, type Urgency } from '@pushwire/protocol';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { StoredEntry } from '../store/types.js';
import type { WakeProvider, WakeToken, WakeTokenStore } from '../store/wake-tokens.js';
import { type ApnsOptions, ApnsSender } from './apns.js';
import { type FcmOptions, FcmSender } from './fcm.js';
import { DEFAULT_WAKE_POLICY, type WakeEvent, type WakePolicy, WakeScheduler } from './scheduler.js';
import { realWakeClock, type WakeClock, type WakeSender } from './types.js';

/** Server options of wake-ups (`ServerOptions.wake`). Off unless APNs or FCM is configured. */
export interface WakeOptions {
  apns?: ApnsOptions;
  fcm?: FcmOptions;
  /** Seconds a message waits for a session before a wake is sent. Default 5. */
  afterSeconds?: number;
  /** Wakes per device per hour, at most. Default 12. */
  maxPerHour?: number;
  /** Seconds after a wake the device did not answer before it may be woken again. Default 900. */
  repeatAfterSeconds?: number;
  /** Senders to use instead of those built from `apns`/`fcm` (tests, other providers). */
  senders?: WakeSender[];
  clock?: WakeClock;
}

/** What the wake service needs from the node. */
export interface WakeHost {
  tokens: WakeTokenStore;
  /** Whether this node holds a session of the device now (no I/O). */
  holds(deviceId: string): boolean;
  isOnline(deviceId: string): Promise<boolean>;
  pendingCount(deviceId: string, now: number): Promise<number>;
  logger?: Logger;
}

/** Counts per provider, also exposed as Prometheus counters by {@link registerWakeMetrics}. */
export interface WakeCounters {
  sent: Record<WakeProvider, number>;
  failed: Record<WakeProvider | 'none', number>;
  removed: Record<WakeProvider, number>;
}

/** The running wake-up machinery of one node: fed appended entries and session opens. */
export interface WakeService {
  readonly providers: WakeProvider[];
  readonly counters: WakeCounters;
  /** Entries appended by a publish: messages on device streams may wake their device. */
  appended(entries: readonly StoredEntry[]): void;
  /** A device opened a session. */
  attached(deviceId: string): void;
  /** A device's session ended. */
  detached(deviceId: string): void;
  close(): void;
}

/** Builds the wake service, or undefined when no provider is configured. */
export function createWakeService(host: WakeHost, options: WakeOptions): WakeService | undefined {
  const senders = new Map<WakeProvider, WakeSender>();
  for (const s of options.senders ?? []) senders.set(s.provider, s);
  if (options.apns && !senders.has('apns')) senders.set('apns', new ApnsSender(options.apns));
  if (options.fcm && !senders.has('fcm')) senders.set('fcm', new FcmSender(options.fcm));
  if (senders.size === 0) return undefined;

  const clock = options.clock ?? realWakeClock;
  const policy: WakePolicy = {
    ...DEFAULT_WAKE_POLICY,
    afterMs: seconds(options.afterSeconds, DEFAULT_WAKE_POLICY.afterMs),
    maxPerHour: Math.max(1, Math.floor(options.maxPerHour ?? DEFAULT_WAKE_POLICY.maxPerHour)),
    repeatAfterMs: seconds(options.repeatAfterSeconds, DEFAULT_WAKE_POLICY.repeatAfterMs),
  };
  const counters: WakeCounters = {
    sent: { apns: 0, fcm: 0 },
    failed: { apns: 0, fcm: 0, none: 0 },
    removed: { apns: 0, fcm: 0 },
  };
  const log = host.logger;
  const onEvent = (e: WakeEvent) => {
    if (e.t === 'sent') counters.sent[e.provider]++;
    else if (e.t === 'removed') {
      counters.removed[e.provider]++;
      log?.info({ device: e.device, provider: e.provider, reason: e.reason }, 'wake token removed');
    } else if (e.t === 'failed') {
      counters.failed[e.provider ?? 'none']++;
      log?.warn({ device: e.device, provider: e.provider, reason: e.reason }, 'wake failed');
    }
  };
  const scheduler = new WakeScheduler(
    {
      clock,
      random: Math.random,
      isOnline: (id) => host.isOnline(id),
      hasPending: async (id) => (await host.pendingCount(id, clock.now())) > 0,
      tokenOf: (id) => host.tokens.get(id),
      removeToken: async (id, token) => {
        await host.tokens.delete(id, token);
      },
      send: (t: WakeToken) =>
        senders.get(t.provider)?.send(t) ??
        Promise.resolve({ kind: 'failed', reason: `no ${t.provider} credentials configured` }),
      onEvent,
    },
    policy,
  );
  return {
    providers: [...senders.keys()],
    counters,
    appended(entries) {
      for (const e of entries) {
        // Device streams only (a unicast or a user's message): a topic message would mean one
        // wake per follower, and followers that care about topics come back on their own.
        const device = deviceOfStream(e.stream);
        if (device === undefined || e.exp <= e.ts) continue;
        // Handed to a session on this node: if that session ends before the app acknowledges,
        // its end arms the wake (detached), so nothing needs watching now.
        if (host.holds(device)) continue;
        scheduler.entry(device, e.urgency as Urgency | undefined);
      }
    },
    attached: (id) => scheduler.connected(id),
    detached: (id) => scheduler.disconnected(id),
    close() {
      scheduler.close();
      for (const s of senders.values()) s.close();
    },
  };
}

/** Prometheus counters of wakes sent, failed and tokens removed, labelled by provider. */
export function registerWakeMetrics(registry: Registry, counters: WakeCounters): void {
  const make = (name: string, help: string, read: () => Record<string, number>) =>
    new Counter({
      name,
      help,
      labelNames: ['provider'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [provider, n] of Object.entries(read())) this.inc({ provider }, n);
      },
    });
  make('pushwire_wakes_sent_total', 'Content-free wake-ups accepted by APNs/FCM.', () => counters.sent);
  make(
    'pushwire_wakes_failed_total',
    'Wake-ups that failed for good (retries exhausted, refused, or no credentials: provider "none").',
    () => counters.failed,
  );
  make(
    'pushwire_wake_tokens_removed_total',
    'Wake tokens removed because the provider called them dead (410/Unregistered/BadDeviceToken/UNREGISTERED).',
    () => counters.removed,
  );
}

function seconds(value: number | undefined, fallbackMs: number): number {
  return value === undefined || !Number.isFinite(value) || value < 0 ? fallbackMs : value * 1000;
}
