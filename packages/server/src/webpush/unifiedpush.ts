import type { FastifyInstance } from 'fastify';
import { HubError } from '../core/errors.js';
import { HttpError } from '../errors.js';
import { KeyedRateLimiter } from './rate-limit.js';
import { baseOf, MAX_PUSH_BODY, subscriptionOf, type WebPushDeps } from './routes.js';

/** Devices one Matrix notify request may name. */
export const MAX_MATRIX_DEVICES = 64;
/** TTL of a notification forwarded by the Matrix gateway: one day (capped by the server's maximum). */
const MATRIX_TTL = 24 * 3600;

const capabilityParams = {
  params: {
    type: 'object',
    properties: { capability: { type: 'string', maxLength: 64 } },
    required: ['capability'],
  },
} as const;

const notifySchema = {
  body: {
    type: 'object',
    properties: {
      notification: {
        type: 'object',
        properties: {
          devices: {
            type: 'array',
            maxItems: MAX_MATRIX_DEVICES,
            items: {
              type: 'object',
              properties: { pushkey: { type: 'string', maxLength: 2048 }, app_id: { type: 'string' } },
              required: ['pushkey'],
            },
          },
        },
        required: ['devices'],
      },
    },
    required: ['notification'],
  },
} as const;

interface NotifyBody {
  notification: { devices: { pushkey: string; app_id?: string }[] };
}

/**
 * UnifiedPush on top of the Web Push endpoints: discovery (`GET /wp/:capability` answers
 * `{"unifiedpush":{"version":1}}`) and the Matrix push gateway `/_matrix/push/v1/notify`, which
 * forwards a homeserver's notification to each pushkey that is an endpoint of this server.
 */
export function registerUnifiedPush(app: FastifyInstance, deps: WebPushDeps): void {
  const { hub, opts, registry, webPush } = deps;
  const maxTtl = webPush.maxTtl ?? opts.maxTtl;
  const limiter = new KeyedRateLimiter(webPush.rate ?? 10, webPush.burst ?? 100);

  app.get<{ Params: { capability: string } }>(
    '/wp/:capability',
    { schema: capabilityParams },
    async (req) => {
      await subscriptionOf(registry, req.params.capability);
      return { unifiedpush: { version: 1 } };
    },
  );

  app.get('/_matrix/push/v1/notify', async () => ({ unifiedpush: { gateway: 'matrix' } }));

  app.post<{ Body: NotifyBody }>(
    '/_matrix/push/v1/notify',
    { schema: notifySchema, bodyLimit: 64 * 1024 },
    async (req) => {
      // Forwarded as the homeserver posted it (re-serialised): what UnifiedPush Matrix clients read.
      const body = Buffer.from(JSON.stringify(req.body));
      if (body.length > MAX_PUSH_BODY) {
        throw new HttpError(
          413,
          'PAYLOAD_TOO_LARGE',
          `a forwarded notification is limited to ${MAX_PUSH_BODY} bytes; this one has ${body.length}`,
        );
      }
      const here = new URL(baseOf(req, webPush.publicUrl, deps.listenUrl));
      const rejected: string[] = [];
      const seen = new Set<string>();
      for (const { pushkey } of req.body.notification.devices) {
        if (seen.has(pushkey)) continue;
        seen.add(pushkey);
        const capability = capabilityOf(pushkey, here);
        const sub =
          capability === undefined
            ? undefined
            : await subscriptionOf(registry, capability).catch(() => undefined);
        if (!sub) {
          rejected.push(pushkey);
          continue;
        }
        // A gateway flood to one pushkey is dropped, not rejected: rejecting would make the homeserver forget it.
        if (limiter.take(sub.id, opts.clock.now()) > 0) continue;
        try {
          await hub.publish({
            to: { device: sub.deviceId },
            ttl: Math.min(MATRIX_TTL, maxTtl),
            data: { webpush: { sub: sub.id, body: body.toString('base64url'), plain: true } },
          });
        } catch (err) {
          if (err instanceof HubError && err.code === 'UNKNOWN_DEVICE') rejected.push(pushkey);
          else throw err;
        }
      }
      return { rejected };
    },
  );
}

/** The capability of a pushkey that is an endpoint of this server (same origin, `/wp/…`), else undefined. */
function capabilityOf(pushkey: string, here: URL): string | undefined {
  let u: URL;
  try {
    u = new URL(pushkey);
  } catch {
    return undefined;
  }
  if (u.origin !== here.origin || u.search !== '' || u.hash !== '') return undefined;
  const m = /^\/wp\/([A-Za-z0-9_-]{32})$/.exec(u.pathname);
  return m?.[1];
}
