import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { HubError, type HubErrorCode } from '../core/errors.js';
import { HttpError } from '../errors.js';
import { type Quota, QuotaError, StoreError } from '../store/errors.js';
import { LogThrottle } from '../util/log-throttle.js';

/** HTTP status of each store quota: a full backlog is storage (507), the others are counts (429). */
const QUOTA_STATUS: Record<Quota, number> = {
  TOO_MANY_TOPICS: 429,
  TOO_MANY_DEVICES: 429,
  DEVICE_QUOTA_EXCEEDED: 429,
  DEVICE_BACKLOG_FULL: 507,
};

/** HTTP status of each refusal of the delivery core. */
const HUB_STATUS: Record<HubErrorCode, number> = {
  UNKNOWN_DEVICE: 404,
  TOO_MANY_ENTRIES: 413,
  BAD_REQUEST: 400,
};

/**
 * The one place where domain errors (the hub's {@link HubError}, the store's {@link QuotaError})
 * become HTTP answers (`{error: code, message}` with the code's status); any other error unchanged.
 */
export function httpErrorOf(err: unknown): unknown {
  if (err instanceof QuotaError) return new HttpError(QUOTA_STATUS[err.quota], err.quota, err.message);
  if (err instanceof HubError) return new HttpError(HUB_STATUS[err.code], err.code, err.message);
  return err;
}

/**
 * Answers every failed request as JSON `{error, message}`: domain errors through
 * {@link httpErrorOf}, store outages as 503, validation and body-parser errors as 4xx, anything
 * else as a logged 500; an unknown route as 404 `NOT_FOUND`.
 */
export function registerErrorHandlers(app: FastifyInstance, opts: ResolvedOptions): void {
  // A store that cannot write fails every request: one log line per 10 s, with a count.
  const storeErrors = new LogThrottle(10_000);
  app.setErrorHandler((err: FastifyError | HttpError, _req, reply) =>
    sendError(reply, httpErrorOf(err) as FastifyError | HttpError, opts, storeErrors),
  );
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );
}

function sendError(
  reply: FastifyReply,
  err: FastifyError | HttpError,
  opts: ResolvedOptions,
  storeErrors: LogThrottle,
): FastifyReply {
  if (err instanceof StoreError && err.code === 'STORE_UNAVAILABLE') {
    // Redis is away: answer at once; the client retries (a publish with its id is safe to retry).
    return reply.code(503).header('retry-after', '1').send({ error: err.code, message: err.message });
  }
  if (err instanceof StoreError && err.code === 'STORE_IO') {
    // The store could not write (disk, or its writer thread died). A write that was in flight may
    // or may not have committed; a publish retried with the same id is never stored twice.
    const suppressed = storeErrors.take(opts.clock.now());
    if (suppressed !== undefined) reply.log.error({ err, suppressed }, 'store write failed');
    return reply.code(503).send({
      error: err.code,
      message: `${err.message}; retry (with the same message id, a publish is never stored twice)`,
    });
  }
  if (err instanceof HttpError) {
    return reply
      .code(err.statusCode)
      .headers(err.headers)
      .send({ ...err.extra, error: err.code, message: err.message });
  }
  if (err.validation) {
    return reply.code(400).send({
      error: 'BAD_REQUEST',
      message: `${err.validationContext ?? 'request'} ${err.message.replace(/^(body|params|querystring)\s*/, '')}`,
    });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return reply.code(400).send({ error: 'MALFORMED_JSON', message: 'request body is not valid JSON' });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return reply.code(413).send({
        error: 'PAYLOAD_TOO_LARGE',
        message: `request body too large (message payload limit ${opts.maxPayload} bytes)`,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return reply
        .code(415)
        .send({ error: 'UNSUPPORTED_MEDIA_TYPE', message: 'send Content-Type: application/json' });
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return reply.code(err.statusCode).send({ error: err.code ?? 'BAD_REQUEST', message: err.message });
  }
  reply.log.error({ err }, 'request failed');
  return reply.code(500).send({ error: 'INTERNAL', message: 'internal error' });
}
