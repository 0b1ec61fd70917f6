import type { FastifyInstance } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { patternError } from '../core/topic-patterns.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import type { Gateway } from '../gateway/gateway.js';
import { maskedWakeToken } from '../store/wake-tokens.js';
import { newDeviceId, newToken, sha256 } from '../util/ids.js';
import { accessOf, principalOf, rateLimited } from './auth.js';
import { deliveryReport } from './delivery.js';
import { adminOrOwnDevice } from './device-auth.js';
import { registerErrorHandlers } from './http-errors.js';
import { registerMessageRoutes } from './messages.js';
import { RegistrationLimiter } from './registration-limit.js';
import { deviceIdParam, deviceReply, errorSchema, registerBody, topicParams } from './schemas.js';
import { messageStatusReply } from './status-schemas.js';

interface Deps {
  hub: Hub;
  gateway: Gateway;
  opts: ResolvedOptions;
  version: string;
  isDraining: () => boolean;
}

const errors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  413: errorSchema,
  429: errorSchema,
};

/** Largest number of devices one bulk registration may create. */
const MAX_DEVICE_BATCH = 1000;

/**
 * Registers the HTTP API. Every route under /v1 needs an API key with the route's scope
 * (docs/security.md): `register` for `POST /v1/devices`, `status` for reads, `publish` for
 * messages, `admin` for the rest.
 */
export function registerRoutes(app: FastifyInstance, deps: Deps): void {
  const { hub, gateway, opts } = deps;
  const store = opts.store;

  registerErrorHandlers(app, opts);

  const access = accessOf(opts);
  const admin = access.require('admin');
  const status = access.require('status');
  const registrations = new RegistrationLimiter(opts.registerRate, opts.registerBurst, opts.clock.now());
  const deviceLimits = {
    maxDevicesPerUser: opts.maxDevicesPerUser,
    maxDevicesPerKey: opts.maxDevicesPerRegisterKey,
  };
  const health = {
    tags: ['operator'],
    summary: 'Liveness, with the connection count: 503 when the store can never write again',
  };
  const ready = {
    tags: ['operator'],
    summary: 'Readiness: 503 while draining, while the store is unavailable, or while its writes fail',
  };

  app.get('/healthz', { schema: health }, async (_req, reply) => {
    const failure = hub.failure;
    if (failure) {
      return reply.code(503).send({
        error: 'STORE_FAILED',
        message: `the store cannot write any more (${failure.message}); restart the process`,
      });
    }
    return { status: 'ok', version: deps.version, connections: gateway.connections };
  });
  app.get('/readyz', { schema: ready }, async (_req, reply) => {
    if (deps.isDraining())
      return reply.code(503).send({ error: 'DRAINING', message: 'server is shutting down' });
    const writeError = store.writeError;
    if (hub.healthy && !writeError) return { status: 'ready' };
    return reply.code(503).send({
      error: 'STORE_UNAVAILABLE',
      message: hub.failure
        ? `the store cannot write any more (${hub.failure.message})`
        : writeError
          ? `store writes are failing (${writeError.message}); ready again after a write succeeds`
          : 'the shared store or bus (Redis, PostgreSQL) is unreachable',
    });
  });

  app.post<{ Body: { user?: string; subscribe?: string[] } | null }>(
    '/v1/devices',
    {
      onRequest: access.require('register'),
      schema: {
        tags: ['devices'],
        summary: 'Register a device',
        description:
          'Returns the device id and its token (shown once; only its hash is stored). Apps register ' +
          'devices from their backend and hand the credentials to the device.',
        body: registerBody,
        response: {
          201: {
            type: 'object',
            properties: { deviceId: { type: 'string' }, token: { type: 'string' }, user: { type: 'string' } },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      const user = req.body?.user;
      let subscribe = req.body?.subscribe;
      if (!p.scopes.has('admin')) {
        // A key an app ships: its devices follow only the key's patterns, claim no user (a user
        // receives what is sent to it), and each address registers at a bounded rate.
        if (user !== undefined || subscribe !== undefined) {
          throw new HttpError(
            403,
            'FORBIDDEN',
            'a register key cannot set user or subscribe: register such devices with an admin key',
            {},
            { scope: 'admin' },
          );
        }
        const wait = registrations.take(req.ip, opts.clock.now());
        if (wait > 0) throw rateLimited('too many registrations from this address', wait);
        subscribe = p.key?.subscribe ?? [];
      } else if (subscribe) {
        for (const pattern of subscribe) {
          const problem = patternError(pattern);
          if (problem) throw badRequest(problem);
        }
      }
      const id = newDeviceId();
      const token = newToken();
      await store.createDevice(
        {
          id,
          tokenHash: sha256(token),
          createdAt: opts.clock.now(),
          lastSeen: 0,
          ...(user !== undefined && { user }),
          ...(subscribe !== undefined && { subscribe }),
          // Counted against the key's bound (maxDevicesPerRegisterKey): admin keys have none.
          ...(!p.scopes.has('admin') && p.key && { keyId: p.key.id }),
        },
        deviceLimits,
      );
      return reply.code(201).send({ deviceId: id, token, ...(user !== undefined && { user }) });
    },
  );

  app.post<{ Body: { devices: { user?: string; subscribe?: string[] }[] } }>(
    '/v1/devices/batch',
    {
      onRequest: admin,
      schema: {
        tags: ['devices'],
        summary: `Register up to ${MAX_DEVICE_BATCH} devices in one request`,
        description:
          'Bulk provisioning: one durable write for all. Answers the credentials in request order.',
        body: {
          type: 'object',
          properties: {
            devices: { type: 'array', items: registerBody, minItems: 1, maxItems: MAX_DEVICE_BATCH },
          },
          required: ['devices'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: {
              devices: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    deviceId: { type: 'string' },
                    token: { type: 'string' },
                    user: { type: 'string' },
                  },
                },
              },
            },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const now = opts.clock.now();
      for (const pattern of req.body.devices.flatMap((d) => d?.subscribe ?? [])) {
        const problem = patternError(pattern);
        if (problem) throw badRequest(problem);
      }
      const made = req.body.devices.map((d) => {
        const user = d?.user;
        return {
          id: newDeviceId(),
          token: newToken(),
          ...(user !== undefined && { user }),
          sub: d?.subscribe,
        };
      });
      const records = made.map(({ id, token, user, sub }) => ({
        id,
        tokenHash: sha256(token),
        createdAt: now,
        lastSeen: 0,
        ...(user !== undefined && { user }),
        ...(sub !== undefined && { subscribe: sub }),
      }));
      if (store.createDevices) await store.createDevices(records, deviceLimits);
      else await Promise.all(records.map((r) => store.createDevice(r, deviceLimits)));
      return reply.code(201).send({
        devices: made.map(({ id, token, user }) => ({
          deviceId: id,
          token,
          ...(user !== undefined && { user }),
        })),
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/devices/:id',
    {
      onRequest: status,
      schema: {
        tags: ['devices'],
        summary: 'Look up a device: online, last seen, pending messages, declared heartbeat, topics',
        params: deviceIdParam,
        response: { 200: deviceReply, ...errors },
      },
    },
    async (req) => {
      const device = await store.getDevice(req.params.id);
      if (!device) throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(req.params.id)}`);
      const session = hub.sessionOf(device.id);
      const [pending, topics, online, wake] = await Promise.all([
        store.pendingCount(device.id, opts.clock.now()),
        store.topicsOf(device.id),
        hub.isOnline(device.id), // another node's session counts (presence, approximate)
        store.wakeTokens?.get(device.id),
      ]);
      return {
        deviceId: device.id,
        ...(device.user !== undefined && { user: device.user }),
        online,
        lastSeen: online ? opts.clock.now() : device.lastSeen || null,
        pending,
        heartbeat: session?.heartbeat ?? null,
        topics,
        ...(store.wakeTokens && { wake: wake ? maskedWakeToken(wake) : null }),
      };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/devices/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['devices'],
        summary: 'Delete a device (its open session is closed; its Web Push subscriptions go with it)',
        params: deviceIdParam,
        response: errors,
      },
    },
    async (req, reply) => {
      if (!(await store.getDevice(req.params.id)))
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(req.params.id)}`);
      hub.revoke(req.params.id); // closes its session on whichever node holds it
      await store.deleteDevice(req.params.id);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/devices/:id/token',
    {
      onRequest: adminOrOwnDevice(opts, 'token', true),
      schema: {
        tags: ['devices'],
        summary: 'Rotate a device token: the old one stops working at once and its session is closed',
        description:
          'Allowed to admin keys and to the device itself (`Device ID:TOKEN` with its current token). ' +
          'Answers the new token (shown once; only its hash is stored). The open session, on whichever ' +
          'node, gets a fatal `TOKEN_ROTATED` error (close code 4012).',
        params: deviceIdParam,
        response: {
          200: { type: 'object', properties: { deviceId: { type: 'string' }, token: { type: 'string' } } },
          ...errors,
        },
      },
    },
    async (req) => {
      if (!store.setDeviceToken) throw new HttpError(501, 'NOT_SUPPORTED', 'this store cannot rotate tokens');
      const token = newToken();
      if (!(await store.setDeviceToken(req.params.id, sha256(token))))
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(req.params.id)}`);
      hub.revoke(req.params.id, 'rotated'); // closes the session that used the old token, on any node
      return { deviceId: req.params.id, token };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/devices/:id/topics',
    {
      onRequest: status,
      schema: { tags: ['devices'], summary: "A device's topics", params: deviceIdParam, response: errors },
    },
    async (req) => {
      await mustExist(req.params.id);
      return { deviceId: req.params.id, topics: await store.topicsOf(req.params.id) };
    },
  );

  app.put<{ Params: { id: string; topic: string } }>(
    '/v1/devices/:id/topics/:topic',
    {
      onRequest: admin,
      schema: {
        tags: ['devices'],
        summary: 'Subscribe a device to a topic (from the current head: no backlog)',
        params: topicParams,
        response: errors,
      },
    },
    async (req) => {
      await mustExist(req.params.id);
      const seq = await hub.subscribe(req.params.id, req.params.topic);
      return { deviceId: req.params.id, topic: req.params.topic, seq };
    },
  );

  app.delete<{ Params: { id: string; topic: string } }>(
    '/v1/devices/:id/topics/:topic',
    {
      onRequest: admin,
      schema: {
        tags: ['devices'],
        summary: 'Unsubscribe a device from a topic',
        params: topicParams,
        response: errors,
      },
    },
    async (req, reply) => {
      await mustExist(req.params.id);
      await hub.unsubscribe(req.params.id, req.params.topic);
      return reply.code(204).send();
    },
  );

  registerMessageRoutes(app, { hub, opts, auth: access.requireHook('publish') });

  app.get<{ Params: { id: string } }>(
    '/v1/messages/:id',
    {
      onRequest: status,
      schema: {
        tags: ['messages'],
        summary: 'Delivery status of a message: per target device, counts per topic',
        params: deviceIdParam,
        response: { 200: messageStatusReply, ...errors },
      },
    },
    async (req) => {
      const record = await store.getPublish(req.params.id);
      if (!record) throw notFound('UNKNOWN_MESSAGE', `no message ${JSON.stringify(req.params.id)}`);
      const report = await deliveryReport(store, record, opts.clock.now());
      const summary = { pending: 0, delivered: 0, expired: 0, collapsed: 0, deleted: 0 };
      for (const d of report.devices) summary[d.state]++;
      return {
        id: record.id,
        ts: record.ts,
        expiresAt: record.exp,
        entries: record.entries,
        ...report,
        summary,
      };
    },
  );

  async function mustExist(id: string): Promise<void> {
    if (!(await store.getDevice(id))) throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(id)}`);
  }
}
