import type { WakeClock } from '@pushwire/server';
import { http, until } from './server.js';

// Barriers for negative checks. "Sleep, then assert nothing (more) arrived" passes when the thing
// under test is merely slow; these end the wait on an event the server or the stream produces, so
// the check says something.

/**
 * Echo round trip: publishes a marker to `to` and waits until `seen(markerId)` holds. A stream is
 * delivered in order, so anything the server would have sent on it before the marker (a replay, a
 * duplicate, an expired or collapsed entry) has arrived by then. Resolves with the marker's id.
 */
export async function echo(
  url: string,
  to: { device: string } | { topic: string },
  seen: (id: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  const r = await http<{ id: string }>(url, 'POST', '/v1/messages', { to, data: { marker: true } });
  if (r.status !== 202) throw new Error(`marker publish failed: ${r.status} ${JSON.stringify(r.body)}`);
  const id = r.body.id;
  await until(() => seen(id), timeoutMs, `the marker ${id}`);
  return id;
}

/** The device's pending count as the server reports it (`GET /v1/devices/:id`). */
export async function pendingOf(url: string, deviceId: string): Promise<number> {
  const r = await http<{ pending: number }>(url, 'GET', `/v1/devices/${deviceId}`);
  if (r.status !== 200) throw new Error(`device lookup failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.pending;
}

/** Waits until the server reports nothing pending for the device: everything it had is acked. */
export async function nothingPending(url: string, deviceId: string, timeoutMs = 10_000): Promise<void> {
  await until(
    async () => (await pendingOf(url, deviceId)) === 0,
    timeoutMs,
    `nothing pending for ${deviceId}`,
  );
}

/**
 * The process's real timers, counting those armed and not yet fired or cleared: handed to the wake
 * service (`wake.clock`), `armed === 0` says no wake can come without a new message or session end.
 */
export function countingWakeClock(): WakeClock & { readonly armed: number } {
  const live = new Set<ReturnType<typeof setTimeout>>();
  return {
    get armed() {
      return live.size;
    },
    now: () => Date.now(),
    setTimeout(fn, ms) {
      const t = setTimeout(() => {
        live.delete(t);
        fn();
      }, ms);
      t.unref();
      live.add(t);
      return t;
    },
    clearTimeout(h) {
      live.delete(h as ReturnType<typeof setTimeout>);
      clearTimeout(h as ReturnType<typeof setTimeout>);
    },
  };
}
