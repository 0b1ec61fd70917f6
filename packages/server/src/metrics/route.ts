import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerMetrics } from './metrics.js';

/**
 * `GET /metrics`: Prometheus text format. Needs a key with the `status` scope unless `isPublic` (server option
 * `metricsPublic`), for scrapers on a private network that cannot send a bearer token.
 */
export function registerMetricsRoute(
  app: FastifyInstance,
  metrics: ServerMetrics,
  auth: (req: FastifyRequest) => Promise<void>,
  isPublic: boolean,
): void {
  app.get(
    '/metrics',
    {
      ...(!isPublic && { onRequest: auth }),
      schema: {
        tags: ['operator'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text exposition format (`text/plain; version=0.0.4`): connections, handshakes, ' +
          'messages, publish→deliver latency, store commits, declared heartbeats, process and ' +
          'event-loop metrics. Metric names are listed in docs/operations.md.',
        ...(isPublic && { security: [] }),
      },
    },
    async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.header('content-type', metrics.registry.contentType).send(text);
    },
  );
}
