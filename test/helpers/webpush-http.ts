import webpush from 'web-push';

/** A subscription as a browser hands it to the application server. */
export interface BrowserSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface Vapid {
  publicKey: string;
  privateKey: string;
}

/**
 * Sends one Web Push message with the `web-push` library's own request (encryption, VAPID JWT,
 * headers) over plain HTTP: the library itself only speaks HTTPS.
 */
export async function sendWebPush(
  sub: BrowserSubscription,
  payload: string | undefined,
  vapid: Vapid | undefined,
  opts: { TTL?: number; topic?: string } = {},
): Promise<{ status: number; body: string }> {
  const details = webpush.generateRequestDetails(sub, payload, {
    TTL: opts.TTL ?? 600,
    ...(opts.topic !== undefined && { topic: opts.topic }),
    ...(vapid && { vapidDetails: { subject: 'mailto:test@example.com', ...vapid } }),
  });
  const res = await fetch(details.endpoint, {
    method: details.method,
    headers: details.headers as Record<string, string>,
    ...(details.body && { body: new Uint8Array(details.body) }),
  });
  return { status: res.status, body: await res.text() };
}
