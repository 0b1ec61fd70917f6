/**
 * Peer: the HTTP floor. A bare Fastify server (the Fastify major Pushwire uses) with Pushwire's
 * publish route shape, POST /v1/messages: the bearer key checked, the body validated by a JSON
 * schema like Pushwire's, nothing stored; the message's `data` sent at once to the target client
 * over a plain `ws` WebSocket (clients connect to /ws?id=<id>; the same text framing as the ws
 * peer), then 202. A topic target sends to every client. It shows what HTTP + JSON + a WebSocket
 * write cost without any durability.
 */
import Fastify from 'fastify';
import { type WebSocket, WebSocketServer } from 'ws';
import { gcOnSignal } from './gc-signal.js';
import { portArg } from './generator.js';

const API_KEY = process.env.BENCH_API_KEY ?? 'bench-key';
const idPattern = '^[A-Za-z0-9._~:-]{1,128}$';
const publishBody = {
  type: 'object',
  properties: {
    to: {
      type: 'object',
      properties: {
        device: { type: 'string', pattern: idPattern },
        user: { type: 'string', minLength: 1, maxLength: 256 },
        topic: { type: 'string', pattern: '^[A-Za-z0-9._~:/-]{1,128}$' },
      },
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
    },
    id: { type: 'string', pattern: idPattern },
    data: {},
    ttl: { type: 'integer', minimum: 0 },
  },
  required: ['to'],
  additionalProperties: false,
} as const;

interface PublishBody {
  to: { device?: string; user?: string; topic?: string };
  data?: unknown;
}

const sockets = new Map<string, WebSocket>();
let nextId = 0;

// Validation as strict as Pushwire's (unknown fields are errors, no coercion), no request logging.
const app = Fastify({
  logger: false,
  ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
});
app.post<{ Body: PublishBody }>(
  '/v1/messages',
  {
    onRequest: async (req, reply) => {
      if (req.headers.authorization !== `Bearer ${API_KEY}`)
        return reply.code(401).send({ error: 'UNAUTHORIZED', message: 'bad API key' });
    },
    schema: { body: publishBody },
  },
  async (req, reply) => {
    const { to, data } = req.body;
    const text = JSON.stringify(data ?? null);
    let recipients = 0;
    if (to.device !== undefined) {
      const ws = sockets.get(to.device);
      if (ws) {
        ws.send(text);
        recipients = 1;
      }
    } else if (to.topic !== undefined) {
      for (const ws of sockets.values()) ws.send(text);
      recipients = sockets.size;
    }
    return reply.code(202).send({ id: `m${++nextId}`, recipients });
  },
);
app.get('/stats', async () => ({ clients: sockets.size }));

const wss = new WebSocketServer({ noServer: true });
app.server.on('upgrade', (req, socket, head) => {
  const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id');
  if (!id) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    sockets.get(id)?.terminate();
    sockets.set(id, ws);
    ws.on('error', () => {});
    ws.on('close', () => {
      if (sockets.get(id) === ws) sockets.delete(id);
    });
  });
});

gcOnSignal();
await app.listen({ host: '127.0.0.1', port: portArg() });
process.stdout.write(`listening on ${(app.server.address() as { port: number }).port}\n`);
process.on('SIGTERM', () => process.exit(0));
