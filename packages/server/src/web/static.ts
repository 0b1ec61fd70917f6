import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** The demo and dashboard pages, shipped with the server package. */
const STATIC_DIR = fileURLToPath(new URL('../../static/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Where the client SDK's browser bundle is built (`node scripts/build-browser.mjs`). */
function sdkDir(): string | undefined {
  try {
    // The package's own directory (its entries differ by export condition: `require` gives dist/cjs).
    const pkg = createRequire(import.meta.url).resolve('@pushwire/client/package.json');
    return join(dirname(pkg), 'dist', 'browser');
  } catch {
    return undefined;
  }
}

/** Plain file names only (no slashes, no `..`): `name.ext` or `name.ext.map`. */
const FILE = /^[a-z0-9-]+(\.[a-z0-9]+)*\.(html|js|mjs|css|map|svg)$/;

/** `GET /`: what this server is, and where to go from here. */
const HOME = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Pushwire</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}li{margin:.3rem 0}</style>
</head>
<body>
<h1>Pushwire</h1>
<p>Self-hosted push: devices keep one resilient WebSocket to this server; app backends publish over HTTP.</p>
<ul>
<li><a href="/demo">Demo</a>: this browser tab as a device</li>
<li><a href="/dashboard">Dashboard</a>: connections, message rates, devices (API key needed)</li>
<li><a href="/docs">API docs</a> (<a href="/openapi.json">OpenAPI document</a>)</li>
<li>Health: <a href="/healthz">/healthz</a> (liveness), <a href="/readyz">/readyz</a> (readiness)</li>
</ul>
<p>WebSocket endpoint: <code>/v1/connect</code>, subprotocol <code>pushwire.v1</code>.</p>
</body>
</html>
`;

/**
 * Serves the home page (`/`) and the browser pages: `/demo` (a device in this browser tab), `/dashboard` (the operator's
 * page; it asks for the API key and calls the JSON API with it) and the SDK bundle at
 * `/sdk/pushwire.js` (script tag, global `Pushwire`) and `/sdk/pushwire.mjs` (ES module).
 */
export function registerWebRoutes(app: FastifyInstance): void {
  const sdk = sdkDir();
  const hide = { schema: { hide: true } };
  // Every HTML page (demo, dashboard, API docs): never framed (clickjacking of the dashboard's
  // forms), and no Referer leaking the page's address to what it links to.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (String(reply.getHeader('content-type') ?? '').startsWith('text/html')) {
      reply.header('content-security-policy', "frame-ancestors 'none'");
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
    }
    return payload;
  });

  app.get('/', hide, (_req, reply) =>
    reply
      .header('content-type', TYPES['.html']!)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(HOME),
  );

  const send = async (reply: FastifyReply, dir: string | undefined, file: string) => {
    if (dir === undefined || !FILE.test(file)) return notFound(reply, file);
    let body: Buffer;
    try {
      body = await readFile(join(dir, file));
    } catch {
      return notFound(reply, file);
    }
    return reply
      .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(body);
  };

  for (const page of ['demo', 'dashboard']) {
    const dir = join(STATIC_DIR, page);
    app.get(`/${page}`, hide, (_req, reply) => send(reply, dir, 'index.html'));
    app.get<{ Params: { file: string } }>(`/${page}/:file`, hide, (req, reply) =>
      send(reply, dir, req.params.file || 'index.html'),
    );
  }
  app.get<{ Params: { file: string } }>('/sdk/:file', hide, (req, reply) =>
    send(reply, sdk, req.params.file),
  );
}

function notFound(reply: FastifyReply, file: string): FastifyReply {
  const hint = file.startsWith('pushwire') ? ' (build the browser SDK: npm run build)' : '';
  return reply.code(404).send({ error: 'NOT_FOUND', message: `no file ${JSON.stringify(file)}${hint}` });
}
