import type { Urgency } from '@pushwire/protocol';
import type { WakeProvider, WakeToken } from '../store/wake-tokens.js';
import type { WakeClock, WakeResult } from './types.js';

/** When and how often a device is woken. Times in ms. */
export interface WakePolicy {
  /** How long a new message may wait for a session before a wake is sent. `high` urgency: at once. */
  afterMs: number;
  /** Wakes per device per rolling hour, at most. */
  maxPerHour: number;
  /**
   * After a wake, the device is expected to connect: no further wake for it until it has, or
   * until this long has passed (the app did not come, e.g. iOS throttled it or the user killed it).
   */
  repeatAfterMs: number;
  /** Attempts per wake on 429/5xx/network failures (the first included). */
  attempts: number;
  /** Backoff before the second attempt; doubles each time, with jitter, capped at `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_WAKE_POLICY: WakePolicy = {
  afterMs: 5000,
  maxPerHour: 12,
  repeatAfterMs: 15 * 60_000,
  attempts: 4,
  retryBaseMs: 1000,
  retryMaxMs: 60_000,
};

/** What happened to one wake (for metrics and logs). */
export type WakeEvent =
  | { t: 'sent'; device: string; provider: WakeProvider; attempts: number }
  | { t: 'failed'; device: string; provider?: WakeProvider; reason: string; attempts: number }
  | { t: 'removed'; device: string; provider: WakeProvider; reason: string }
  | { t: 'retry'; device: string; provider: WakeProvider; reason: string; delayMs: number }
  | { t: 'skipped'; device: string; reason: 'online' | 'nothing-pending' | 'no-token' | 'hourly-cap' };

/** The scheduler's view of the rest of the server. Every call may reject: that wake is dropped. */
export interface WakeDeps {
  clock: WakeClock;
  random: () => number;
  /** Whether the device has a session on any node (this one, or through the bus's presence). */
  isOnline(deviceId: string): Promise<boolean>;
  /** Whether the device has deliverable messages it has not acknowledged. */
  hasPending(deviceId: string): Promise<boolean>;
  tokenOf(deviceId: string): Promise<WakeToken | undefined>;
  /** Removes the token if the device still has that one. */
  removeToken(deviceId: string, token: string): Promise<void>;
  /** Sends through the token's provider; `failed` when no sender is configured for it. */
  send(token: WakeToken): Promise<WakeResult>;
  onEvent?(event: WakeEvent): void;
}

interface DeviceWake {
  timer?: unknown;
  dueAt?: number;
  /** A wake is being decided or sent: new messages join it. */
  busy?: boolean;
  /** Time of the last wake sent while the device has not connected since. */
  awaitingSince?: number;
  /** Times of wakes sent in the last hour. */
  sent: number[];
}

const HOUR = 3_600_000;
/** Idle device states are pruned once this many are tracked. */
const PRUNE_AT = 10_000;

/**
 * Decides when a device that has no session gets a content-free wake-up, and sends it: pure
 * logic on an injected clock, I/O behind {@link WakeDeps}.
 *
 * A message for the device (its own stream), or the end of its session, arms a timer (`afterMs`;
 * `high` urgency: at once; `very-low`: never). When it fires, the wake is sent only if the device
 * is still offline, has a token, still has unacknowledged messages, and is under its hourly cap. Collapsing:
 * messages arriving while a timer is armed, a wake is under way, or a sent wake is awaiting the
 * device's connection add nothing — a burst costs one wake. {@link connected} ends the wait.
 * Retries (429/5xx/network) back off with jitter, bounded by `attempts`; a dead token is removed.
 * Nothing here blocks or fails a publish: {@link entry} is synchronous and never throws.
 */
export class WakeScheduler {
  private readonly devices = new Map<string, DeviceWake>();
  private closed = false;

  constructor(
    private readonly deps: WakeDeps,
    private readonly policy: WakePolicy = DEFAULT_WAKE_POLICY,
  ) {}

  /** A message was appended to the device's stream. */
  entry(deviceId: string, urgency: Urgency | undefined): void {
    if (this.closed || urgency === 'very-low') return;
    const now = this.deps.clock.now();
    const delay = urgency === 'high' ? 0 : this.policy.afterMs;
    let d = this.devices.get(deviceId);
    if (d === undefined) {
      if (this.devices.size >= PRUNE_AT) this.prune(now);
      d = { sent: [] };
      this.devices.set(deviceId, d);
    }
    if (d.busy) return;
    if (d.awaitingSince !== undefined && now - d.awaitingSince < this.policy.repeatAfterMs) return;
    if (d.timer !== undefined) {
      if ((d.dueAt ?? 0) <= now + delay) return;
      this.deps.clock.clearTimeout(d.timer); // a high-urgency message brings the wake forward
    }
    const state = d;
    d.dueAt = now + delay;
    d.timer = this.deps.clock.setTimeout(() => {
      state.timer = state.dueAt = undefined;
      state.busy = true;
      void this.wake(deviceId, state).finally(() => {
        state.busy = false;
      });
    }, delay);
  }

  /**
   * The device's session ended. Messages handed to it but not acknowledged (the app went to the
   * background, the socket died half-open and was closed by the idle timer) would wait for the
   * next connection: treated like a new message, so they wake the device if still pending.
   */
  disconnected(deviceId: string): void {
    this.entry(deviceId, undefined);
  }

  /** The device opened a session: no wake until it is offline again with new messages. */
  connected(deviceId: string): void {
    const d = this.devices.get(deviceId);
    if (d === undefined) return;
    if (d.timer !== undefined) this.deps.clock.clearTimeout(d.timer);
    d.timer = d.dueAt = d.awaitingSince = undefined;
  }

  /** Devices with any wake state (for tests and metrics). */
  get tracked(): number {
    return this.devices.size;
  }

  /** Cancels every timer; wakes under way finish but send no retry. */
  close(): void {
    this.closed = true;
    for (const d of this.devices.values()) if (d.timer !== undefined) this.deps.clock.clearTimeout(d.timer);
    this.devices.clear();
  }

  private async wake(deviceId: string, d: DeviceWake): Promise<void> {
    const { deps } = this;
    const skip = (reason: Extract<WakeEvent, { t: 'skipped' }>['reason']) =>
      deps.onEvent?.({ t: 'skipped', device: deviceId, reason });
    let token: WakeToken | undefined;
    try {
      // Cheapest first: most devices without a session are back within seconds (a reconnect),
      // and browsers or servers have no token.
      if (await deps.isOnline(deviceId)) return skip('online');
      token = await deps.tokenOf(deviceId);
      if (token === undefined) return skip('no-token');
      if (!(await deps.hasPending(deviceId))) return skip('nothing-pending');
      const now = deps.clock.now();
      d.sent = d.sent.filter((t) => now - t < HOUR);
      if (d.sent.length >= this.policy.maxPerHour) return skip('hourly-cap');
      for (let attempt = 1; ; attempt++) {
        const result = await deps.send(token);
        const provider = token.provider;
        if (result.kind === 'sent') {
          const at = deps.clock.now();
          d.sent.push(at);
          d.awaitingSince = at;
          deps.onEvent?.({ t: 'sent', device: deviceId, provider, attempts: attempt });
          return;
        }
        if (result.kind === 'gone') {
          await deps.removeToken(deviceId, token.token);
          deps.onEvent?.({ t: 'removed', device: deviceId, provider, reason: result.reason });
          return;
        }
        if (result.kind === 'failed' || attempt >= this.policy.attempts || this.closed) {
          deps.onEvent?.({
            t: 'failed',
            device: deviceId,
            provider,
            reason: result.reason,
            attempts: attempt,
          });
          return;
        }
        const delayMs = this.backoff(attempt, result.afterMs);
        deps.onEvent?.({ t: 'retry', device: deviceId, provider, reason: result.reason, delayMs });
        await new Promise<void>((resolve) => deps.clock.setTimeout(resolve, delayMs));
        if (await deps.isOnline(deviceId)) return skip('online');
      }
    } catch (err) {
      deps.onEvent?.({
        t: 'failed',
        device: deviceId,
        ...(token !== undefined && { provider: token.provider }),
        reason: err instanceof Error ? err.message : String(err),
        attempts: 0,
      });
    }
  }

  /** Exponential backoff with jitter (half to full), at least `Retry-After`, at most `retryMaxMs`. */
  private backoff(attempt: number, retryAfterMs = 0): number {
    const { retryBaseMs, retryMaxMs } = this.policy;
    const exp = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempt - 1));
    const jittered = exp / 2 + (exp / 2) * this.deps.random();
    return Math.min(retryMaxMs, Math.max(jittered, retryAfterMs));
  }

  private prune(now: number): void {
    for (const [id, d] of this.devices) {
      const awaiting = d.awaitingSince !== undefined && now - d.awaitingSince < this.policy.repeatAfterMs;
      if (d.timer === undefined && !d.busy && !awaiting && d.sent.every((t) => now - t >= HOUR))
        this.devices.delete(id);
    }
  }
}
