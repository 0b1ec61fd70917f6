import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../config.js';
import type { Hub } from '../core/hub.js';
import { HttpError } from '../errors.js';
import { refuse } from '../gateway/pending.js';
import type { WireSockets } from '../gateway/wire/registry.js';
import { WireSocket } from '../gateway/wire/socket.js';
import { acceptUpgrade } from '../gateway/wire/upgrade.js';
import { type Access, accessOf, requireScope } from './auth.js';
import { PublishConnection, type PublishHost } from './publish-connection.js';
import { type BodyValidator, type JsonParse, PUBLISH_SUBPROTOCOL, PublishClose } from './publish-frames.js';
import { errorSchema, publishBody } from './schemas.js';

/** Bounds of the publisher stream (defaults in {@link PUBLISH_STREAM_DEFAULTS}). */
export interface PublishStreamLimits {
  /** Unacknowledged frames per connection; one more closes it with 4008. */
  maxInFlight: number;
  /** Open streams per API key on this node; more are refused with 429 before the upgrade. */
  maxPerKey: number;
  /** Milliseconds without a byte from the client (frames or pings) and nothing in flight: closed with 4010. */
  idleMs: number;
  /** Milliseconds between two reads of the key from the store (a key revoked elsewhere stops working). */
  recheckMs: number;
}

export const PUBLISH_STREAM_DEFAULTS: PublishStreamLimits = {
  maxInFlight: 256,
  maxPerKey: 16,
  idleMs: 5 * 60_000,
  recheckMs: 5_000,
};

const TICK_MS = 1000;

interface Deps {
  app: FastifyInstance;
  hub: Hub;
  opts: ResolvedOptions;
  /** The server's socket registry (shared with the gateway: drain and shutdown close these too). */
  sockets: WireSockets;
  log: Logger | undefined;
}

/**
 * The publisher stream `GET /v1/publish` (subprotocol `pushwire-publish.v1`): a backend publishes
 * many messages over one WebSocket with `Authorization: Bearer KEY`, each handled exactly as
 * `POST /v1/messages` handles its body, and gets one ack per message after its durable commit
 * (see {@link PublishConnection}, docs/protocol.md "Publisher stream").
 */
export class PublishStreams {
  readonly connections = new Set<PublishConnection>();
  private readonly perKey = new Map<string, number>();
  private readonly host: PublishHost;
  private readonly access: Access;
  private readonly limits: PublishStreamLimits;
  private validate: BodyValidator | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly deps: Deps,
    limits: Partial<PublishStreamLimits> = {},
  ) {
    this.limits = { ...PUBLISH_STREAM_DEFAULTS, ...limits };
    this.access = accessOf(deps.opts);
    const parseJson = deps.app.getDefaultJsonParser('error', 'error');
    const parse: JsonParse = (text) => {
      let out: unknown;
      let failure: Error | null = null;
      parseJson(undefined as never, text, (err, body) => {
        failure = err;
        out = body;
      });
      if (failure) throw failure;
      return out;
    };
    this.host = {
      hub: deps.hub,
      opts: deps.opts,
      access: this.access,
      log: deps.log,
      parse,
      validator: () => this.validator(),
      maxInFlight: this.limits.maxInFlight,
      release: (c) => this.release(c),
    };
    this.access.onRevoked.add((keyId) => {
      for (const c of this.connections) if (c.principal.id === keyId) revoked(c);
    });
  }

  /** Handles an HTTP upgrade request for `/v1/publish`: checks the key before the 101. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.stopped)
      return refuse(socket, 503, 'DRAINING', 'server is shutting down', { 'Retry-After': '5' });
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim());
    if (!offered.includes(PUBLISH_SUBPROTOCOL)) {
      return refuse(
        socket,
        426,
        'UPGRADE_REQUIRED',
        `offer the WebSocket subprotocol ${PUBLISH_SUBPROTOCOL}`,
      );
    }
    const upgrade = acceptUpgrade(req.method, req.headers, PUBLISH_SUBPROTOCOL);
    if ('refusal' in upgrade) {
      const r = upgrade.refusal;
      return refuse(socket, r.status, r.code, r.message, r.headers);
    }
    socket.pause(); // nothing is read before the key is checked
    let principal: Awaited<ReturnType<Access['authenticate']>>;
    try {
      principal = await this.access.authenticate(req.headers.authorization);
      requireScope(principal, 'publish');
      if ((this.perKey.get(principal.id) ?? 0) >= this.limits.maxPerKey) {
        throw new HttpError(
          429,
          'TOO_MANY_STREAMS',
          `this key has ${this.limits.maxPerKey} publisher streams open on this node`,
          { 'Retry-After': '1' },
        );
      }
    } catch (err) {
      socket.resume(); // read again, so the client's end after our answer closes the socket
      if (err instanceof HttpError) {
        return refuse(socket, err.statusCode, err.code, err.message, err.headers);
      }
      this.deps.log?.error({ err }, 'publisher stream handshake failed');
      return refuse(socket, 503, 'STORE_UNAVAILABLE', 'the key could not be checked; retry');
    }
    if (this.stopped || !socket.writable) return void socket.destroy();
    socket.write(upgrade.response);
    const frameLimit = Math.max(64 * 1024, this.deps.opts.maxPayload * 4); // the HTTP body limit
    const ws = new WireSocket(socket, head, frameLimit, this.deps.sockets);
    const now = this.deps.opts.clock.now();
    const c = new PublishConnection(this.host, ws, socket, principal, now);
    c.bytesSeen = c.bytesRead;
    ws.listener = c;
    this.connections.add(c);
    this.perKey.set(principal.id, (this.perKey.get(principal.id) ?? 0) + 1);
    socket.resume();
    ws.send(
      JSON.stringify({
        t: 'ready',
        maxInFlight: this.limits.maxInFlight,
        maxPayload: this.deps.opts.maxPayload,
        maxFrame: frameLimit,
        idleTimeout: this.limits.idleMs,
      }),
    );
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  /** Closes idle streams and re-reads the keys of streams whose last check is older than `recheckMs`. */
  tick(): void {
    const now = this.deps.opts.clock.now();
    for (const c of this.connections) {
      const bytes = c.bytesRead;
      if (bytes !== c.bytesSeen || c.inFlight > 0) {
        c.bytesSeen = bytes;
        c.activeAt = now;
      } else if (now - c.activeAt >= this.limits.idleMs) {
        c.close(PublishClose.IdleTimeout, 'IDLE_TIMEOUT');
        continue;
      }
      if (!c.checking && now - c.checkedAt >= this.limits.recheckMs) this.recheck(c, now);
    }
  }

  /** Refuses new streams (the gateway's drain closes the open ones with the other sockets). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private recheck(c: PublishConnection, now: number): void {
    c.checking = true;
    this.access.refresh(c.principal).then(
      (p) => {
        c.checking = false;
        c.checkedAt = now;
        if (!p) return revoked(c);
        c.principal = p;
        if (!p.scopes.has('publish'))
          c.close(PublishClose.Unauthorized, 'FORBIDDEN: the key lost the publish scope');
      },
      () => {
        c.checking = false; // the store is away: keep the stream, check again at the next tick
      },
    );
  }

  private release(c: PublishConnection): void {
    if (!this.connections.delete(c)) return;
    const n = (this.perKey.get(c.principal.id) ?? 1) - 1;
    if (n <= 0) this.perKey.delete(c.principal.id);
    else this.perKey.set(c.principal.id, n);
    if (this.connections.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Fastify's validator of the publish body, compiled once with the server's Ajv options. */
  private validator(): BodyValidator {
    this.validate ??= this.deps.app.validatorCompiler?.({
      schema: publishBody,
      method: 'POST',
      url: '/v1/publish',
      httpPart: 'body',
    }) as BodyValidator | undefined;
    if (!this.validate) throw new Error('the publish schema could not be compiled');
    return this.validate;
  }
}

function revoked(c: PublishConnection): void {
  c.close(PublishClose.Unauthorized, 'UNAUTHORIZED: this API key was revoked');
}

/** `GET /v1/publish` without an upgrade: 426 telling what to send (and the endpoint in OpenAPI). */
export function registerPublishStreamRoute(app: FastifyInstance): void {
  app.get(
    '/v1/publish',
    {
      schema: {
        tags: ['messages'],
        summary: 'Publisher stream: a WebSocket for high-rate publishing (see docs/protocol.md)',
        description:
          `Upgrade with the subprotocol \`${PUBLISH_SUBPROTOCOL}\` and \`Authorization: Bearer KEY\` ` +
          '(publish scope). Each text frame is one `POST /v1/messages` body; the server answers ' +
          '`{"t":"acks","acks":[…]}` with one result per frame in frame order, after its durable commit.',
        response: { 426: errorSchema },
      },
    },
    async (_req, reply) =>
      reply
        .code(426)
        .header('Upgrade', 'websocket')
        .send({
          error: 'UPGRADE_REQUIRED',
          message: `upgrade to a WebSocket with the subprotocol ${PUBLISH_SUBPROTOCOL}`,
        }),
  );
}
