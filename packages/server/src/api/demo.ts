import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { deviceStream } from '@pushwire/protocol';
import type { FastifyInstance } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { HttpError } from '../errors.js';
import type { ApiKeyStore } from '../store/api-keys.js';
import { newDeviceId, sha256 } from '../util/ids.js';
import { TokenBucket } from '../util/token-bucket.js';
import { rateLimited } from './auth.js';
import { adminOrOwnDevice } from './device-auth.js';
import { newScopedKey } from './keys.js';
import { deviceIdParam, errorSchema, notificationSchema } from './schemas.js';

/** Topic patterns the devices of the demo key may follow. */
export const DEMO_SUBSCRIBE = ['demo/*'];

/**
 * The demo page's key: read from `file`, or (first start, or the key was revoked or lost) created
 * in the store with the `register` scope and {@link DEMO_SUBSCRIBE}, and saved to `file` (0600).
 * Safe to hand to any browser: it can only register devices that follow `demo/*` topics.
 * `created` is true when it was made now.
 */
export async function ensureDemoKey(
  keys: ApiKeyStore,
  file: string,
  now: number,
): Promise<{ key: string; created: boolean }> {
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    const record = key ? await keys.byHash(sha256(key)) : undefined;
    if (record && record.revokedAt === undefined) return { key, created: false };
  }
  const key = newScopedKey();
  await keys.create({
    id: `key_demo${newDeviceId().slice(0, 8)}`,
    hash: sha256(key),
    label: 'demo page',
    scopes: ['register'],
    subscribe: DEMO_SUBSCRIBE,
    createdAt: now,
  });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, created: true };
}

const echoBody = {
  type: 'object',
  properties: { notification: notificationSchema, data: {} },
  additionalProperties: false,
} as const;

/** Echoes one device may send itself per second, and burst. */
const ECHO_RATE = 1;
const ECHO_BURST = 5;
const MAX_ECHO_BUCKETS = 10_000;

/**
 * `GET /demo/config.json` (the demo page's register key, public) and
 * `POST /v1/devices/:id/echo`: a device sends a message to itself only (its own credential, or an
 * admin key), at most 1/s (burst 5): the demo's "send" without any publish key in the page.
 */
export function registerDemoRoutes(
  app: FastifyInstance,
  { opts, hub, demoKey }: { opts: ResolvedOptions; hub: Hub; demoKey: string | undefined },
): void {
  app.get('/demo/config.json', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .header('cache-control', 'no-store')
      .send({ registerKey: demoKey ?? null, subscribe: demoKey ? DEMO_SUBSCRIBE : [] }),
  );

  const buckets = new Map<string, TokenBucket>();
  app.post<{
    Params: { id: string };
    Body: { notification?: Record<string, unknown>; data?: unknown } | null;
  }>(
    '/v1/devices/:id/echo',
    {
      onRequest: adminOrOwnDevice(opts, 'messages', true),
      schema: {
        tags: ['devices'],
        summary: 'A device sends a message to itself (demo, end-to-end checks)',
        description:
          'Allowed to the device itself (`Device ID:TOKEN`) and to admin keys; 1 message/s per device ' +
          '(burst 5), TTL 60 s. It reaches only the device: nothing else can be targeted.',
        params: deviceIdParam,
        body: echoBody,
        response: { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const now = opts.clock.now();
      let b = buckets.get(id);
      if (!b) {
        if (buckets.size >= MAX_ECHO_BUCKETS) buckets.delete(buckets.keys().next().value!);
        b = new TokenBucket(ECHO_RATE, ECHO_BURST, now);
        buckets.set(id, b);
      }
      const wait = b.take(now);
      if (wait > 0) throw rateLimited('a device may send itself 1 message/s', wait);
      const body = req.body ?? {};
      const size = Buffer.byteLength(JSON.stringify(body));
      if (size > opts.maxPayload)
        throw new HttpError(
          413,
          'PAYLOAD_TOO_LARGE',
          `the message is ${size} bytes; the limit is ${opts.maxPayload}`,
        );
      const outcome = await hub.publish({
        to: { device: id },
        ttl: 60,
        ...(body.data !== undefined && { data: body.data }),
        ...(body.notification !== undefined && { notification: body.notification }),
      });
      return reply.code(202).send({ id: outcome.id, stream: deviceStream(id) });
    },
  );
}
