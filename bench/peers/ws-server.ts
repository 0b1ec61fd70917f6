/**
 * Peer: a minimal plain `ws` server, the way most apps write one. Holds connections; broadcasts
 * on `POST /broadcast` (the body, as one text message to every client); `POST /generate` runs the
 * in-process unicast generator; `GET /stats`. BENCH_PING_MS turns on the common keep-alive
 * recipe (a ping frame to every client every N ms; off by default, as in `ws`).
 */
import { createServer } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';
import { gcOnSignal } from './gc-signal.js';
import { type GenerateSpec, generate, json, portArg, readBody } from './generator.js';

const clients: WebSocket[] = [];
const server = createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/broadcast') {
      const msg = await readBody(req);
      for (const c of wss.clients) c.send(msg);
      return json(res, 200, { sent: wss.clients.size });
    }
    if (req.method === 'POST' && req.url === '/generate') {
      const spec = JSON.parse(await readBody(req)) as GenerateSpec;
      const sent = await generate(
        spec,
        () => clients.length,
        (i, p) => clients[i]!.send(JSON.stringify(p)),
      );
      return json(res, 200, { sent });
    }
    if (req.url === '/stats') return json(res, 200, { clients: wss.clients.size });
    json(res, 404, { error: 'NOT_FOUND' });
  } catch (err) {
    json(res, 500, { error: String(err) });
  }
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  clients.push(ws);
  ws.on('error', () => {});
  ws.on('close', () => {
    const i = clients.indexOf(ws);
    if (i >= 0) {
      clients[i] = clients[clients.length - 1]!;
      clients.pop();
    }
  });
});
const pingMs = Number(process.env.BENCH_PING_MS ?? 0);
if (pingMs > 0) {
  setInterval(() => {
    for (const c of wss.clients) c.ping();
  }, pingMs);
}

gcOnSignal();
server.listen(portArg(), '127.0.0.1', () => {
  process.stdout.write(`listening on ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
