import type { FastifyInstance } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { HttpError, notFound } from '../errors.js';
import { StoreError } from '../store/errors.js';
import { maskedWakeToken, type WakeToken, type WakeTokenStore } from '../store/wake-tokens.js';
import { adminOrOwnDevice } from './device-auth.js';
import { deviceIdParam, errorSchema, wakeReply } from './schemas.js';

interface Deps {
  opts: ResolvedOptions;
  tokens: WakeTokenStore;
}

/** Longest accepted wake token (FCM registration tokens are ~160–200 characters; APNs 64 hex). */
const MAX_TOKEN = 4096;

const wakeBody = {
  type: 'object',
  properties: {
    provider: { type: 'string', enum: ['apns', 'fcm'] },
    token: { type: 'string', minLength: 1, maxLength: MAX_TOKEN, pattern: '^[\\x21-\\x7e]+$' },
    topic: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.\\-_]+$' },
    environment: { type: 'string', enum: ['production', 'sandbox'] },
  },
  required: ['provider', 'token'],
  additionalProperties: false,
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

/**
 * `PUT`/`DELETE /v1/devices/:id/wake`: a device's APNs/FCM token for content-free wake-ups. Allowed
 * to an admin API key (`Bearer KEY`) and to the device itself (`Device ID:TOKEN`, as the SDK sends).
 */
export function registerWakeRoutes(app: FastifyInstance, { opts, tokens }: Deps): void {
  const store = opts.store;
  const authorize = adminOrOwnDevice(opts, 'wake token');
  const unknown = (id: string) => notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(id)}`);

  app.put<{ Params: { id: string }; Body: Omit<WakeToken, 'deviceId' | 'updatedAt'> }>(
    '/v1/devices/:id/wake',
    {
      onRequest: authorize,
      schema: {
        tags: ['devices'],
        summary:
          "Register the device's APNs or FCM token for content-free wake-ups (replaces any earlier one)",
        params: deviceIdParam,
        body: wakeBody,
        response: {
          200: { type: 'object', properties: { deviceId: { type: 'string' }, wake: wakeReply } },
          ...errors,
        },
      },
    },
    async (req) => {
      const { provider, token, topic, environment } = req.body;
      if (provider === 'fcm' && (topic !== undefined || environment !== undefined))
        throw new HttpError(400, 'BAD_REQUEST', 'topic and environment are for apns tokens only');
      const record: WakeToken = {
        deviceId: req.params.id,
        provider,
        token,
        ...(topic !== undefined && { topic }),
        ...(environment !== undefined && { environment }),
        updatedAt: opts.clock.now(),
      };
      try {
        await tokens.set(record);
      } catch (err) {
        if (err instanceof StoreError && err.code === 'STORE_NOT_FOUND') throw unknown(req.params.id);
        throw err;
      }
      return { deviceId: req.params.id, wake: maskedWakeToken(record) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/devices/:id/wake',
    {
      onRequest: authorize,
      schema: {
        tags: ['devices'],
        summary: "Remove the device's wake token",
        params: deviceIdParam,
        response: errors,
      },
    },
    async (req, reply) => {
      if (!(await store.getDevice(req.params.id))) throw unknown(req.params.id);
      await tokens.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
