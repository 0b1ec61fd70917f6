/**
 * Peer: a Socket.IO 4 server with default settings (pingInterval 25 s, pingTimeout 20 s).
 * `POST /broadcast` emits the JSON body as event "m" to everyone; `POST /generate` runs the
 * in-process unicast generator; `GET /stats`. BENCH_PING_MS overrides pingInterval (only for the
 * scaled idle-cost measurement).
 */
import { createServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { gcOnSignal } from './gc-signal.js';
import { type GenerateSpec, generate, json, portArg, readBody } from './generator.js';

const clients: Socket[] = [];
const server = createServer();
const pingMs = Number(process.env.BENCH_PING_MS ?? 0);
const io = new Server(server, pingMs > 0 ? { pingInterval: pingMs } : {});
// socket.io handles /socket.io/; everything else is ours.
server.on('request', async (req, res) => {
  if (req.url?.startsWith('/socket.io/')) return;
  try {
    if (req.method === 'POST' && req.url === '/broadcast') {
      io.emit('m', JSON.parse(await readBody(req)));
      return json(res, 200, { sent: io.engine.clientsCount });
    }
    if (req.method === 'POST' && req.url === '/generate') {
      const spec = JSON.parse(await readBody(req)) as GenerateSpec;
      const sent = await generate(
        spec,
        () => clients.length,
        (i, p) => clients[i]!.emit('m', p),
      );
      return json(res, 200, { sent });
    }
    if (req.url === '/stats') return json(res, 200, { clients: io.engine.clientsCount });
    json(res, 404, { error: 'NOT_FOUND' });
  } catch (err) {
    json(res, 500, { error: String(err) });
  }
});
io.on('connection', (socket) => {
  clients.push(socket);
  socket.on('disconnect', () => {
    const i = clients.indexOf(socket);
    if (i >= 0) {
      clients[i] = clients[clients.length - 1]!;
      clients.pop();
    }
  });
});

gcOnSignal();
server.listen(portArg(), '127.0.0.1', () => {
  process.stdout.write(`listening on ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
