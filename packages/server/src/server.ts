import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { registerAdminRoutes } from './api/admin.js';
import { accessOf } from './api/auth.js';
import { registerDemoRoutes } from './api/demo.js';
import { registerJsonBodyParser } from './api/json-body.js';
import { registerKeyRoutes } from './api/keys.js';
import { registerOpenApi } from './api/openapi.js';
import { PublishStreams, registerPublishStreamRoute } from './api/publish-stream.js';
import { registerRoutes } from './api/routes.js';
import { registerWakeRoutes } from './api/wake.js';
import { AutopushService } from './autopush/host.js';
import { registerAutopushMetrics } from './autopush/metrics.js';
import { type ResolvedOptions, resolveOptions, type ServerOptions } from './config.js';
import { Hub } from './core/hub.js';
import { frameEntry } from './gateway/encode.js';
import { Gateway } from './gateway/gateway.js';
import type { Session } from './gateway/session.js';
import { createMetrics } from './metrics/metrics.js';
import { registerMetricsRoute } from './metrics/route.js';
import { createWakeService, registerWakeMetrics, type WakeService } from './wake/service.js';
import { registerWebRoutes } from './web/static.js';
import { registerWebPush, type WebPushRegistry } from './webpush/index.js';
import { WEB_PUSH_DEFAULTS } from './webpush/routes.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** A running (or ready to run) Pushwire node: HTTP API and WebSocket gateway on one port. */
export interface PushwireServer {
  /** The Fastify app, for `inject()` in tests and for adding routes. */
  readonly app: FastifyInstance;
  readonly hub: Hub<Session>;
  readonly gateway: Gateway;
  readonly options: ResolvedOptions;
  /** Wake-ups through APNs/FCM, when configured (`options.wake`) and the store keeps wake tokens. */
  readonly wake: WakeService | undefined;
  /** The autopush endpoint `/v1/autopush`, when `options.autopush` turned it on. */
  readonly autopush: AutopushService | undefined;
  /** Starts listening; resolves with the base URL (`http://host:port`, `https://…` with TLS). */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** Base URL once listening. */
  readonly url: string;
  /** Graceful drain: goaway to every client (spread over the window), then close. */
  drain(windowMs?: number): Promise<void>;
  /** Closes sockets, HTTP server and store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a Pushwire node on the given store.
 * @example
 * const server = createPushwireServer({ store: SqliteStore.open({ path: 'pushwire.db' }), apiKeys: ['secret'] });
 * console.log(await server.listen({ port: 8787 }));
 */
export function createPushwireServer(options: ServerOptions): PushwireServer {
  const opts = resolveOptions(options);
  const fastifyOptions = {
    loggerInstance: opts.logger as FastifyBaseLogger | undefined,
    // Nothing per request at info: a push server's publish rate would drown the log.
    logController: new LogController({ disableRequestLogging: true }),
    // The message payload limit is checked precisely in the route; this only bounds memory.
    bodyLimit: Math.max(64 * 1024, opts.maxPayload * 4),
    forceCloseConnections: true,
    // Route parameters are ids and topics of up to 128 characters; a topic of '/'s is 384 once
    // percent-encoded. The schemas check the real limit (the router's default 100 answered 414).
    routerOptions: { maxParamLength: 512 },
    // Validation is strict: unknown fields are errors, not silently dropped; no type coercion.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  };
  // With TLS the same port serves HTTPS and WSS (the gateway hooks the server's upgrade event).
  const app = (
    options.tls
      ? Fastify({ ...fastifyOptions, https: { cert: options.tls.cert, key: options.tls.key } })
      : Fastify(fastifyOptions)
  ) as FastifyInstance;
  const hub = new Hub<Session>(opts.store, opts.clock, frameEntry, opts.bus, {
    maxTopicsPerDevice: opts.maxTopicsPerDevice,
    maxPendingPerDevice: opts.maxPendingPerDevice,
    maxPendingBytesPerDevice: opts.maxPendingBytesPerDevice,
    maxEntriesPerRequest: opts.maxEntriesPerRequest,
    unfollowedTopicTtl: opts.unfollowedTopicTtl,
  });
  const gateway = new Gateway(hub, opts, opts.logger);
  const publishStreams = new PublishStreams({ app, hub, opts, sockets: gateway.sockets, log: opts.logger });
  let draining = false;
  let webPushSweep: ((now: number) => Promise<number>) | undefined;
  let autopush: AutopushService | undefined;
  let url = '';
  let closing: Promise<void> | undefined;

  const metrics = createMetrics({ hub, gateway, store: opts.store });
  const wakeTokens = opts.store.wakeTokens;
  const wake =
    wakeTokens && options.wake
      ? createWakeService(
          {
            tokens: wakeTokens,
            holds: (id) => hub.holds(id),
            isOnline: (id) => hub.isOnline(id),
            pendingCount: (id, now) => opts.store.pendingCount(id, now),
            ...(opts.logger && { logger: opts.logger }),
          },
          options.wake,
        )
      : undefined;
  if (wake) {
    hub.observe(wake);
    registerWakeMetrics(metrics.registry, wake.counters);
  }
  const access = accessOf(opts);

  registerJsonBodyParser(app, opts.maxJsonDepth);
  registerOpenApi(app, pkg.version);
  // Routes are added once the OpenAPI plugin has loaded, so that it sees every route schema.
  app.after(() => {
    registerRoutes(app, { hub, gateway, opts, version: pkg.version, isDraining: () => draining });
    registerAdminRoutes(app, {
      hub,
      gateway,
      opts,
      metrics,
      version: pkg.version,
      auth: access.require('status'),
    });
    registerKeyRoutes(app, { opts });
    registerPublishStreamRoute(app);
    registerDemoRoutes(app, { opts, hub, demoKey: options.demoKey });
    registerMetricsRoute(app, metrics, access.require('status'), opts.metricsPublic);
    registerWebRoutes(app);
    if (wakeTokens) registerWakeRoutes(app, { opts, tokens: wakeTokens });
    if (options.webPush !== false) {
      const webPush = options.webPush ?? {};
      const registry = webPush.registry ?? opts.store.webPushRegistry;
      if (registry) {
        registerWebPush(app, { hub, opts, registry, webPush, listenUrl: () => url });
        if (options.autopush) {
          const apOptions = options.autopush === true ? {} : options.autopush;
          const deps = {
            hub,
            opts,
            registry,
            webPush,
            sockets: gateway.sockets,
            tls: !!options.tls,
            listenUrl: () => url,
          };
          autopush = new AutopushService({ ...deps, log: opts.logger }, apOptions);
          registerAutopushMetrics(metrics.registry, autopush);
        }
        webPushSweep = purgerOf(registry, webPush.revokedRetention ?? WEB_PUSH_DEFAULTS.revokedRetention);
      } else opts.logger?.warn('Web Push off: the store keeps no subscriptions; pass webPush.registry');
    }
    if (options.autopush && !autopush)
      throw new Error('autopush needs the Web Push service and its registry');
  });
  app.server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/v1/publish') {
      publishStreams.handleUpgrade(req, socket, head).catch((err) => {
        opts.logger?.error({ err }, 'publisher stream upgrade failed');
        socket.destroy();
      });
    } else if (autopush && path === '/v1/autopush') autopush.handleUpgrade(req, socket, head);
    else gateway.handleUpgrade(req, socket, head);
  });

  const wheelTimer = setInterval(() => {
    gateway.tick();
    autopush?.tick();
  }, 250);
  wheelTimer.unref();
  const sweepTimer = setInterval(() => {
    const now = opts.clock.now();
    opts.store.sweep(now).catch((err) => opts.logger?.error({ err }, 'sweep failed'));
    webPushSweep?.(now).catch((err) => opts.logger?.error({ err }, 'Web Push sweep failed'));
  }, opts.sweepIntervalMs);
  sweepTimer.unref();

  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(wheelTimer);
      clearInterval(sweepTimer);
      wake?.close();
      draining = true;
      autopush?.stop();
      publishStreams.stop();
      await gateway.close();
      await app.close();
      await opts.bus.close();
      await opts.store.close();
    })();
    return closing;
  };

  return {
    app,
    hub,
    gateway,
    options: opts,
    wake,
    get autopush() {
      return autopush;
    },
    get url() {
      return url;
    },
    async listen(l = {}) {
      // An engine that starts asynchronously (the SQLite writer thread) is ready before clients come.
      await (opts.store as { ready?: () => Promise<void> }).ready?.();
      // A deep accept backlog: a reconnect storm must queue in the kernel, not be dropped as SYNs.
      await app.listen({ host: l.host ?? '127.0.0.1', port: l.port ?? 8787, backlog: 4096 });
      const addr = app.server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `${options.tls ? 'https' : 'http'}://${host}:${addr.port}`;
      return url;
    },
    async drain(windowMs) {
      draining = true;
      autopush?.stop();
      publishStreams.stop();
      await gateway.drain(windowMs);
      await close();
    },
    close,
  };
}

/** The sweep of revoked Web Push subscriptions older than the retention (seconds), if the registry purges. */
function purgerOf(
  registry: WebPushRegistry,
  retention: number,
): ((now: number) => Promise<number>) | undefined {
  const purge = registry.purgeRevoked?.bind(registry);
  return purge && ((now) => purge(now - retention * 1000));
}
