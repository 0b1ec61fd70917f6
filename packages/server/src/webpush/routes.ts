import { createHmac, createPublicKey, randomBytes } from 'node:crypto';
import { parseAes128gcmHeader, WebPushCryptoError } from '@pushwire/protocol';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { adminOrOwnDevice } from '../api/device-auth.js';
import type { ResolvedOptions } from '../config.js';
import { HubError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { HttpError, notFound } from '../errors.js';
import { sha256 } from '../util/ids.js';
import { parsePushHeaders } from './headers.js';
import { KeyedRateLimiter } from './rate-limit.js';
import type { WebPushRegistry, WebPushSubscriptionRecord } from './registry.js';
import { registerUnifiedPush } from './unifiedpush.js';
import { decodePublicKey, parseVapidHeaders, VapidError, verifyVapid } from './vapid.js';

/** Options of the Web Push service (`webPush` of `createPushwireServer`). */
export interface WebPushOptions {
  /**
   * Public base URL of this server as publishers reach it, e.g. `https://push.example.com`:
   * endpoints are built on it and VAPID `aud` must be its origin. Default: the address the server
   * listens on (`http://127.0.0.1:8787`), never the `Host` header a client sends; set it whenever
   * publishers reach the server by another name (a domain, a reverse proxy).
   */
  publicUrl?: string;
  /** Largest TTL, seconds; a larger one is capped and the cap echoed in the `TTL` header. Default 30 days. */
  maxTtl?: number;
  /** Messages per second each subscription may receive, and burst. Defaults 10 and 100. */
  rate?: number;
  burst?: number;
  /** Where subscriptions live. Default: a table in the SQLite store's own file. */
  registry?: WebPushRegistry;
  /**
   * Subscriptions one device may hold, revoked ones included until they are purged. Default 100.
   * Beyond it: 409 `TOO_MANY_SUBSCRIPTIONS`.
   */
  maxSubscriptionsPerDevice?: number;
  /**
   * Seconds a revoked subscription is kept (its endpoint answers 410 Gone meanwhile, so publishers
   * drop it; afterwards 404). Default 7 days; the sweep purges older ones.
   */
  revokedRetention?: number;
}

/** Defaults of {@link WebPushOptions} bounds. */
export const WEB_PUSH_DEFAULTS = { maxSubscriptionsPerDevice: 100, revokedRetention: 7 * 24 * 3600 };

/** What the Web Push routes need. */
export interface WebPushDeps {
  hub: Hub;
  opts: ResolvedOptions;
  registry: WebPushRegistry;
  webPush: WebPushOptions;
  /** The server's own base URL once listening ('' before): the default of `publicUrl`. */
  listenUrl?: () => string;
}

/** Largest push message body (RFC 8030 §7.2: a push service must accept at least 4096 bytes). */
export const MAX_PUSH_BODY = 4096;
const CAPABILITY_PATTERN = /^[A-Za-z0-9_-]{32}$/;
const idPattern = '^[A-Za-z0-9._~:-]{1,128}$';
const keyPattern = '^[A-Za-z0-9_-]{86,88}={0,2}$';

const subscribeSchema = {
  params: {
    type: 'object',
    properties: { id: { type: 'string', pattern: idPattern } },
    required: ['id'],
  },
  body: {
    type: ['object', 'null'],
    properties: { applicationServerKey: { type: 'string', pattern: keyPattern } },
    additionalProperties: false,
  },
} as const;

const subscriptionParams = {
  params: {
    type: 'object',
    properties: {
      id: { type: 'string', pattern: idPattern },
      subId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    },
    required: ['id', 'subId'],
  },
} as const;

/**
 * Registers the Web Push service: subscription management under `/v1/devices/:id/webpush` and the
 * push endpoints `POST /wp/:capability` (RFC 8030 §5, RFC 8291 payloads, RFC 8292 VAPID).
 */
export function registerWebPush(app: FastifyInstance, deps: WebPushDeps): void {
  if (deps.webPush.publicUrl !== undefined) {
    const u = new URL(deps.webPush.publicUrl);
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new Error('webPush.publicUrl must be http(s)');
  }
  registerSubscriptionRoutes(app, deps);
  app.register(async (scope) => registerPushEndpoint(scope, deps));
  registerUnifiedPush(app, deps);
}

/**
 * Base URL endpoints are built on and VAPID `aud` is checked against: the configured public URL,
 * else the address the server listens on; a sender's `Host` header only for a server that is not
 * listening (requests injected in tests).
 */
export function baseOf(req: FastifyRequest, publicUrl: string | undefined, listenUrl?: () => string): string {
  if (publicUrl !== undefined) return publicUrl.replace(/\/+$/, '');
  const own = listenUrl?.();
  if (own) return own;
  if (!req.host) throw new HttpError(400, 'BAD_REQUEST', 'a Host header is required');
  return `${req.protocol}://${req.host}`;
}

function registerSubscriptionRoutes(app: FastifyInstance, deps: WebPushDeps): void {
  const { opts, registry } = deps;

  /** Admin API key (`Bearer KEY`), or the device's own credential (`Device ID:TOKEN`). */
  const authorize = adminOrOwnDevice(opts, 'subscriptions', true);

  app.post<{ Params: { id: string }; Body: { applicationServerKey?: string } | null }>(
    '/v1/devices/:id/webpush',
    { onRequest: authorize, schema: subscribeSchema },
    async (req, reply) => {
      const key = req.body?.applicationServerKey?.replace(/=+$/, '');
      if (key !== undefined && !isP256Key(key)) {
        throw new HttpError(
          400,
          'BAD_APPLICATION_SERVER_KEY',
          'applicationServerKey must be a base64url uncompressed P-256 public key (65 bytes)',
        );
      }
      // Revoked ones count until purged: otherwise subscribe/unsubscribe churn grows the table forever.
      const max = deps.webPush.maxSubscriptionsPerDevice ?? WEB_PUSH_DEFAULTS.maxSubscriptionsPerDevice;
      const held = (await registry.listByDevice(req.params.id)).length;
      if (held >= max) {
        throw new HttpError(
          409,
          'TOO_MANY_SUBSCRIPTIONS',
          `a device may hold ${max} push subscriptions, revoked ones included until they are purged ` +
            `(${Math.round((deps.webPush.revokedRetention ?? WEB_PUSH_DEFAULTS.revokedRetention) / 3600)} h after revocation); delete one first`,
        );
      }
      const { record, capability } = mintSubscription(req.params.id, opts.clock.now(), key);
      await registry.create(record);
      return reply.code(201).send({
        subscriptionId: record.id,
        endpoint: `${baseOf(req, deps.webPush.publicUrl, deps.listenUrl)}/wp/${capability}`,
        expirationTime: null,
        ...(key !== undefined && { applicationServerKey: key }),
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/devices/:id/webpush',
    { onRequest: authorize, schema: { params: subscribeSchema.params } },
    async (req) => ({
      deviceId: req.params.id,
      subscriptions: (await registry.listByDevice(req.params.id)).map((s) => ({
        subscriptionId: s.id,
        createdAt: s.createdAt,
        revokedAt: s.revokedAt ?? null,
        applicationServerKey: s.applicationServerKey ?? null,
      })),
    }),
  );

  app.delete<{ Params: { id: string; subId: string } }>(
    '/v1/devices/:id/webpush/:subId',
    { onRequest: authorize, schema: subscriptionParams },
    async (req, reply) => {
      const sub = await registry.byId(req.params.subId);
      if (!sub || sub.deviceId !== req.params.id) {
        throw notFound('UNKNOWN_SUBSCRIPTION', `device has no push subscription ${req.params.subId}`);
      }
      await registry.revoke(sub.id, opts.clock.now());
      return reply.code(204).send();
    },
  );
}

/**
 * A new subscription of a device: its record (to store) and the capability its endpoint
 * `/wp/CAPABILITY` carries (never stored, only its hash). `id` defaults to a random one.
 */
export function mintSubscription(
  deviceId: string,
  now: number,
  applicationServerKey?: string,
  id: string = randomBytes(12).toString('base64url'),
): { record: WebPushSubscriptionRecord; capability: string } {
  // 192 random bits: the endpoint URL is the capability to push to this device.
  const capability = randomBytes(24).toString('base64url');
  const record: WebPushSubscriptionRecord = {
    id,
    deviceId,
    capabilityHash: sha256(capability),
    topicKey: randomBytes(16).toString('base64url'),
    createdAt: now,
    ...(applicationServerKey !== undefined && { applicationServerKey }),
  };
  return { record, capability };
}

/** Whether `key` (base64url, unpadded) is an uncompressed P-256 public key. */
export function isP256Key(key: string): boolean {
  const raw = decodePublicKey(key);
  if (!raw) return false;
  try {
    const x = Buffer.from(raw.subarray(1, 33)).toString('base64url');
    const y = Buffer.from(raw.subarray(33)).toString('base64url');
    createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
    return true;
  } catch {
    return false;
  }
}

/** The collapse key of a Topic: keyed per subscription, so the device never learns the Topic. */
const collapseKeyOf = (sub: WebPushSubscriptionRecord, topic: string) =>
  `wp:${createHmac('sha256', sub.topicKey).update(topic).digest('base64url').slice(0, 22)}`;

function registerPushEndpoint(scope: FastifyInstance, deps: WebPushDeps): void {
  const { hub, opts, registry, webPush } = deps;
  const maxTtl = webPush.maxTtl ?? opts.maxTtl;
  const limiter = new KeyedRateLimiter(webPush.rate ?? 10, webPush.burst ?? 100);

  // Push messages are opaque bytes, whatever their Content-Type; bodies up to the limit plus a
  // margin reach the handler, so that its 413 says why.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: MAX_PUSH_BODY + 1024 },
    (_req, body, done) => done(null, body),
  );
  scope.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof VapidError) {
      return reply
        .code(err.status)
        .header('WWW-Authenticate', 'vapid')
        .send({ error: err.code, message: err.message });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(tooLarge());
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ error: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type is malformed' });
    }
    throw err;
  });

  scope.post<{ Params: { capability: string }; Body: Buffer | undefined }>(
    '/wp/:capability',
    async (req, reply) => {
      const sub = await subscriptionOf(registry, req.params.capability);
      const base = baseOf(req, webPush.publicUrl, deps.listenUrl);
      const creds = parseVapidHeaders(req.headers.authorization, one(req.headers['crypto-key']));
      if (creds) {
        await verifyVapid(creds, {
          audience: new URL(base).origin,
          now: opts.clock.now(),
          applicationServerKey: sub.applicationServerKey,
        });
      } else if (sub.applicationServerKey !== undefined) {
        throw new VapidError(
          'VAPID_REQUIRED',
          'this subscription was made with an applicationServerKey: send Authorization: vapid t=JWT, k=KEY',
        );
      }
      const headers = parsePushHeaders(req.headers, maxTtl);
      const body = req.body ?? Buffer.alloc(0);
      if (body.length > 0) checkBody(body, one(req.headers['content-encoding']));

      const wait = limiter.take(sub.id, opts.clock.now());
      if (wait > 0) {
        const seconds = Math.ceil(wait / 1000);
        throw new HttpError(
          429,
          'RATE_LIMITED',
          `too many messages to this subscription; retry in ${seconds} s`,
          { 'Retry-After': String(seconds) },
        );
      }
      const outcome = await hub
        .publish({
          to: { device: sub.deviceId },
          ttl: headers.ttl,
          // Urgency shapes delivery (low waits for the device's heartbeat) but is never forwarded.
          hold: headers.urgency === 'low' || headers.urgency === 'very-low',
          ...(headers.topic !== undefined && { collapseKey: collapseKeyOf(sub, headers.topic) }),
          data: { webpush: { sub: sub.id, ...(body.length > 0 && { body: body.toString('base64url') }) } },
        })
        .catch((err: unknown) => {
          if (err instanceof HubError && err.code === 'UNKNOWN_DEVICE') {
            throw new HttpError(410, 'UNSUBSCRIBED', "this subscription's device was deleted");
          }
          throw err;
        });
      return reply
        .code(201)
        .header('Location', `${base}/wp/m/${outcome.id}`)
        .header('TTL', String(headers.ttl))
        .send({ id: outcome.id, ttl: headers.ttl, expiresAt: outcome.exp });
    },
  );
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(',') : v);

const tooLarge = () => ({
  error: 'PAYLOAD_TOO_LARGE',
  message: `push message bodies are limited to ${MAX_PUSH_BODY} bytes`,
});

export async function subscriptionOf(
  registry: WebPushRegistry,
  capability: string,
): Promise<WebPushSubscriptionRecord> {
  const sub = CAPABILITY_PATTERN.test(capability)
    ? await registry.byCapability(sha256(capability))
    : undefined;
  if (!sub) throw notFound('UNKNOWN_SUBSCRIPTION', 'no push subscription at this endpoint');
  if (sub.revokedAt !== undefined) {
    throw new HttpError(410, 'UNSUBSCRIBED', 'this push subscription was unsubscribed');
  }
  return sub;
}

/** A body must be one aes128gcm record (RFC 8291) of at most {@link MAX_PUSH_BODY} bytes. */
function checkBody(body: Buffer, encoding: string | undefined): void {
  if (body.length > MAX_PUSH_BODY) {
    const t = tooLarge();
    throw new HttpError(413, t.error, `${t.message}; this one has ${body.length}`);
  }
  if (encoding?.trim().toLowerCase() !== 'aes128gcm') {
    throw new HttpError(
      415,
      'UNSUPPORTED_ENCODING',
      `a push message body must be encrypted with Content-Encoding: aes128gcm (RFC 8291), not ${JSON.stringify(encoding ?? null)}`,
    );
  }
  try {
    const header = parseAes128gcmHeader(body);
    if (header.keyId.length !== 65 || header.keyId[0] !== 4) {
      throw new WebPushCryptoError('BAD_HEADER', 'keyid must be the 65-byte sender public key');
    }
  } catch (err) {
    if (!(err instanceof WebPushCryptoError)) throw err;
    throw new HttpError(400, 'BAD_ENCRYPTION', `malformed aes128gcm body: ${err.message}`);
  }
}
