import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

const AUTHENTICATED = /^\/(v1\/(?!connect)|metrics$)/;

/**
 * Registers the OpenAPI document (`GET /openapi.json`, built from the same route schemas that
 * validate requests) and its human page (`GET /docs`, Swagger UI served from the npm package, no
 * network needed). Must be registered before the routes: it collects them as they are added.
 */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  app.register(swagger, {
    openapi: {
      info: {
        title: 'Pushwire HTTP API',
        version,
        description:
          'Publish messages to devices, users and topics; register devices; read delivery status. ' +
          'Devices connect over WebSocket at `/v1/connect` (see docs/protocol.md).',
      },
      tags: [
        { name: 'messages', description: 'Publishing and delivery status' },
        { name: 'devices', description: 'Device registration, lookup and topic subscriptions' },
        { name: 'operator', description: 'Health, metrics and dashboard data' },
        { name: 'keys', description: 'Scoped API keys (admin): create, list, revoke' },
      ],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key: the admin key, or a scoped key (publish, register, status, admin; see docs/security.md)',
          },
        },
      },
    },
    // Every /v1 route and /metrics need the API key: say so once instead of in each schema.
    transform: ({ schema, url }) => {
      const out = { ...(schema as Record<string, unknown>) };
      if (AUTHENTICATED.test(url) && out.security === undefined) out.security = [{ apiKey: [] }];
      return { schema: out, url };
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: false } });
  app.after(() => {
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });
}
