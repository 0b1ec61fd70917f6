import { deviceStream } from '@pushwire/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { notFound } from '../errors.js';
import type { Gateway } from '../gateway/gateway.js';
import type { ServerMetrics } from '../metrics/metrics.js';
import { deviceState } from './delivery.js';
import { deviceIdParam, errorSchema } from './schemas.js';
import { deviceMessagesQuery, deviceMessagesReply, statsReply } from './status-schemas.js';

interface Deps {
  hub: Hub;
  gateway: Gateway;
  opts: ResolvedOptions;
  metrics: ServerMetrics;
  version: string;
  auth: (req: FastifyRequest) => Promise<void>;
}

const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema };

/** Operator routes the dashboard reads: counters, and a device's recent messages with their state. */
export function registerAdminRoutes(app: FastifyInstance, deps: Deps): void {
  const { hub, gateway, opts, metrics, auth } = deps;
  const store = opts.store;
  const startedAt = opts.clock.now();

  app.get(
    '/v1/admin/stats',
    {
      onRequest: auth,
      schema: {
        tags: ['operator'],
        summary: 'Live counters',
        description:
          'Totals since the server started; a client computes rates from two readings. The same ' +
          'figures are in `/metrics`.',
        response: { 200: statsReply, ...errors },
      },
    },
    async () => {
      const latency = metrics.latency();
      return {
        now: opts.clock.now(),
        startedAt,
        version: deps.version,
        connections: gateway.connections,
        sessions: hub.online,
        ...gateway.counters,
        ...hub.counters,
        liveDeliveries: latency.count,
        latencySumMs: latency.sumMs,
        ...(store.stats && { store: store.stats() }),
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>(
    '/v1/devices/:id/messages',
    {
      onRequest: auth,
      schema: {
        tags: ['devices'],
        summary: "A device's recent messages and their delivery state",
        description:
          'The newest entries still stored in the device stream, newest first. Acknowledged entries ' +
          'are removed by the periodic sweep, so this shows what is pending plus what was delivered, ' +
          'expired or collapsed since the last sweep; `GET /v1/messages/{id}` answers for any message ' +
          'for as long as publish ids are kept.',
        params: deviceIdParam,
        querystring: deviceMessagesQuery,
        response: { 200: deviceMessagesReply, ...errors },
      },
    },
    async (req) => {
      const deviceId = req.params.id;
      if (!(await store.getDevice(deviceId))) {
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(deviceId)}`);
      }
      if (!store.recentEntries || !store.entryFate) return { deviceId, messages: [] };
      const stream = deviceStream(deviceId);
      const now = opts.clock.now();
      const entries = await store.recentEntries(stream, Number(req.query.limit ?? 20));
      const messages = [];
      for (const e of entries) {
        const fate = await store.entryFate(stream, e.seq);
        messages.push({
          id: e.id,
          seq: e.seq,
          ts: e.ts,
          expiresAt: e.exp,
          ...(e.notification !== undefined && { notification: e.notification }),
          ...(e.data !== undefined && { data: e.data }),
          ...(e.urgency !== undefined && { urgency: e.urgency }),
          ...(e.collapseKey !== undefined && { collapseKey: e.collapseKey }),
          ...deviceState(fate, e.seq, e.exp, now),
        });
      }
      return { deviceId, messages };
    },
  );
}
