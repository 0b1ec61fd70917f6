/**
 * The frames of the publisher stream `GET /v1/publish` (subprotocol `pushwire-publish.v1`), without
 * I/O: a client frame is one JSON text message holding exactly the body of `POST /v1/messages`;
 * the server answers with `ready` once, then `acks` frames (docs/protocol.md, "Publisher stream").
 */
import { HttpError } from '../errors.js';
import { StoreError } from '../store/errors.js';
import { jsonDepth } from './json-body.js';
import type { PublishBody } from './messages.js';

export const PUBLISH_SUBPROTOCOL = 'pushwire-publish.v1';

/** Close codes of the publisher stream (besides RFC 6455's own: 1000, 1001, 1002, 1007, 1009). */
export const PublishClose = {
  /** More unacknowledged frames than `ready.maxInFlight`. */
  TooManyInFlight: 4008,
  /** The key was revoked or deleted while the stream was open. */
  Unauthorized: 4001,
  /** No byte from the client (frames or pings) for the idle timeout, nothing in flight. */
  IdleTimeout: 4010,
  /** A server failure the stream cannot report per message. */
  Internal: 1011,
} as const;

/** The per-message result of a refused frame: the HTTP API's error body plus its status. */
export interface RefusalResult {
  error: string;
  message: string;
  status: number;
  [extra: string]: unknown;
}

/** A validator compiled from the HTTP API's publish schema (Fastify's Ajv, same options). */
export type BodyValidator = ((body: unknown) => boolean) & {
  errors?: { instancePath?: string; message?: string }[] | null;
};

/** What a JSON text parser does with a body: the value, or throws (secure-json-parse semantics). */
export type JsonParse = (text: string) => unknown;

/**
 * Decodes one client frame into a publish body, checked as `POST /v1/messages` checks its body:
 * JSON nesting depth, JSON syntax (prototype poisoning refused), the schema. A refusal carries the
 * code and status the HTTP API answers for the same body.
 */
export function decodePublishFrame(
  data: Buffer,
  binary: boolean,
  parse: JsonParse,
  validate: BodyValidator,
  maxDepth: number,
): PublishBody | RefusalResult {
  if (binary) return refusal(415, 'UNSUPPORTED_MEDIA_TYPE', 'frames are JSON text, not binary');
  const text = data.toString('utf8');
  if (jsonDepth(text, maxDepth) > maxDepth) {
    return refusal(400, 'JSON_TOO_DEEP', `JSON nested deeper than ${maxDepth} levels`);
  }
  let body: unknown;
  try {
    body = parse(text);
  } catch {
    return refusal(400, 'MALFORMED_JSON', 'frame is not valid JSON');
  }
  if (!validate(body)) {
    const e = validate.errors?.[0];
    return refusal(400, 'BAD_REQUEST', `body${e?.instancePath ?? ''} ${e?.message ?? 'is invalid'}`);
  }
  return body as PublishBody;
}

export function isRefusal(x: PublishBody | RefusalResult): x is RefusalResult {
  return typeof (x as RefusalResult).error === 'string';
}

export function refusal(status: number, error: string, message: string): RefusalResult {
  return { error, message, status };
}

/**
 * The result of a publish that failed, as the HTTP API would answer it: an {@link HttpError}'s
 * code, status and extra fields; a store outage or write failure as 503; undefined for anything
 * else (a server bug: the caller logs it and answers INTERNAL).
 */
export function refusalOf(err: unknown): RefusalResult | undefined {
  if (err instanceof HttpError) {
    return { ...err.extra, error: err.code, message: err.message, status: err.statusCode };
  }
  if (err instanceof StoreError && (err.code === 'STORE_UNAVAILABLE' || err.code === 'STORE_IO')) {
    return refusal(503, err.code, `${err.message}; retry with the same message id`);
  }
  return undefined;
}
