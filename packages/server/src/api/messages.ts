import type { FastifyInstance } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import type { EntryBudget, Hub, PublishOutcome, PublishRequest, Target } from '../core/hub.js';
import { anyMatches } from '../core/topic-patterns.js';
import { HttpError } from '../errors.js';
import { type CallbackHook, type Principal, principalOf } from './auth.js';
import { httpErrorOf } from './http-errors.js';
import { errorSchema, publishBody, publishReply } from './schemas.js';

/** A publish as the API receives it (validated by {@link publishBody}). */
export interface PublishBody {
  to: Target;
  id?: string;
  data?: unknown;
  notification?: PublishRequest['notification'];
  ttl?: number;
  collapseKey?: string;
  urgency?: PublishRequest['urgency'];
}

/** Largest number of messages in one batch request. */
export const MAX_BATCH = 1000;

const errors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  429: errorSchema,
  404: errorSchema,
  413: errorSchema,
  507: errorSchema,
};

/** Serialised size of a JSON value, as it will be stored and sent (0 when absent). */
const jsonBytes = (v: unknown): number => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v)));

/** The 202 body of one accepted message. */
export interface AcceptedReply {
  id: string;
  duplicate: boolean;
  ts: number;
  expiresAt: number;
  ttl: number;
  /** Devices the message is for (a topic's current subscribers). */
  recipients: number;
  entries: { stream: string; seq: number }[];
}

/**
 * The 202 body of one accepted message; `recipients` counts devices (a topic's current
 * subscribers). Synchronous for device targets; a promise when a topic's subscribers are counted.
 */
export function accepted(hub: Hub, { outcome, ttl }: Published): AcceptedReply | Promise<AcceptedReply> {
  // A publish that created no entry (a user without devices) has no stored expiry: echo the TTL set.
  const exp = outcome.entries.length > 0 ? outcome.exp : outcome.ts + ttl * 1000;
  const reply: AcceptedReply = {
    id: outcome.id,
    duplicate: outcome.duplicate,
    ts: outcome.ts,
    expiresAt: exp,
    ttl: Math.round((exp - outcome.ts) / 1000),
    recipients: 0,
    entries: outcome.entries,
  };
  const n = hub.recipientsOf(outcome.entries);
  if (typeof n === 'number') {
    reply.recipients = n;
    return reply;
  }
  return n.then((count) => {
    reply.recipients = count;
    return reply;
  });
}

/**
 * 403 unless the key may target `to`: a key with `topics`, `users` or `devices` restrictions
 * reaches only what they list (a kind it lists nothing of is refused); a key with none reaches any.
 */
export function checkTarget(p: Principal, to: Target): void {
  const k = p.key;
  if (!k || p.scopes.has('admin') || (!k.topics && !k.users && !k.devices)) return;
  const ok =
    'topic' in to
      ? anyMatches(k.topics ?? [], to.topic)
      : 'user' in to
        ? (k.users ?? []).includes(to.user)
        : (k.devices ?? []).includes(to.device);
  if (!ok) {
    const [kind, name] = Object.entries(to)[0] as [string, string];
    throw new HttpError(403, 'FORBIDDEN', `this key may not publish to ${kind} ${JSON.stringify(name)}`);
  }
}

/** A stored publish, and the TTL (seconds) it was given. */
export interface Published {
  outcome: PublishOutcome;
  ttl: number;
}

/** Checks the target and payload limit, applies TTL defaults, publishes; resolves once durable. */
export async function publishOne(
  hub: Hub,
  opts: ResolvedOptions,
  body: PublishBody,
  budget?: EntryBudget,
  principal?: Principal,
): Promise<Published> {
  if (principal) checkTarget(principal, body.to);
  const size = jsonBytes(body.data) + jsonBytes(body.notification);
  if (size > opts.maxPayload) {
    throw new HttpError(
      413,
      'PAYLOAD_TOO_LARGE',
      `data and notification are ${size} bytes; the limit is ${opts.maxPayload}`,
    );
  }
  const ttl = Math.min(body.ttl ?? opts.defaultTtl, opts.maxTtl);
  // Optional fields set one by one: a spread of `cond && {…}` allocates a throwaway object each.
  const req: PublishRequest = { to: body.to, ttl };
  if (budget !== undefined) req.budget = budget;
  if (body.id !== undefined) req.id = body.id;
  if (body.data !== undefined) req.data = body.data;
  if (body.notification !== undefined) req.notification = body.notification;
  if (body.collapseKey !== undefined) req.collapseKey = body.collapseKey;
  if (body.urgency !== undefined) req.urgency = body.urgency;
  let outcome: PublishOutcome;
  try {
    outcome = await hub.publish(req);
  } catch (err) {
    throw httpErrorOf(err);
  }
  return { outcome, ttl };
}

/** `POST /v1/messages` and `POST /v1/messages/batch`. */
export function registerMessageRoutes(
  app: FastifyInstance,
  deps: { hub: Hub; opts: ResolvedOptions; auth: CallbackHook },
): void {
  const { hub, opts, auth } = deps;

  app.post<{ Body: PublishBody }>(
    '/v1/messages',
    {
      onRequest: auth,
      schema: {
        tags: ['messages'],
        summary: 'Publish a message to a device, a user or a topic',
        description:
          'Answers 202 once the message is durably stored. `id` is an idempotency key: publishing it ' +
          'again appends nothing and returns the first result with `duplicate: true`.',
        body: publishBody,
        response: { 202: publishReply, ...errors },
      },
    },
    async (req, reply) => {
      const published = await publishOne(hub, opts, req.body, undefined, principalOf(req));
      const body = accepted(hub, published);
      return reply.code(202).send(typeof (body as Promise<unknown>).then === 'function' ? await body : body);
    },
  );

  app.post<{ Body: { messages: PublishBody[] } }>(
    '/v1/messages/batch',
    {
      onRequest: auth,
      // A batch may hold up to MAX_BATCH payloads of maxPayload bytes each, plus JSON overhead.
      bodyLimit: MAX_BATCH * (opts.maxPayload + 1024),
      schema: {
        tags: ['messages'],
        summary: `Publish up to ${MAX_BATCH} messages in one request`,
        description:
          'Each message is validated and stored like a single publish; all are committed together. ' +
          'Answers 202 once every accepted message is durable, with one result per message in order: ' +
          'the accepted message, or `{error, message, status}` for one that was refused (unknown device, ' +
          'payload too large). Schema errors refuse the whole batch with 400.',
        body: {
          type: 'object',
          properties: { messages: { type: 'array', items: publishBody, minItems: 1, maxItems: MAX_BATCH } },
          required: ['messages'],
          additionalProperties: false,
        },
        response: {
          202: {
            type: 'object',
            properties: {
              accepted: { type: 'integer' },
              refused: { type: 'integer' },
              results: {
                type: 'array',
                items: {
                  anyOf: [
                    { ...publishReply, required: ['id'] },
                    {
                      type: 'object',
                      properties: {
                        error: { type: 'string' },
                        message: { type: 'string' },
                        status: { type: 'integer' },
                      },
                      required: ['error'],
                    },
                  ],
                },
              },
            },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      // All publishes enter the store's current batch together: one commit for the whole request.
      // They share one entry budget: a message that would pass it is refused (413 TOO_MANY_ENTRIES).
      const budget: EntryBudget = { remaining: opts.maxEntriesPerRequest };
      const principal = principalOf(req);
      const settled = await Promise.allSettled(
        req.body.messages.map((m) => publishOne(hub, opts, m, budget, principal)),
      );
      let refused = 0;
      const results = await Promise.all(
        settled.map(async (s) => {
          if (s.status === 'fulfilled') return accepted(hub, s.value);
          // A server failure fails the request; a refusal of this message (a full device backlog
          // included, 507) is its result.
          if (
            !(s.reason instanceof HttpError) ||
            (s.reason.statusCode >= 500 && s.reason.statusCode !== 507)
          ) {
            throw s.reason;
          }
          refused++;
          return { error: s.reason.code, message: s.reason.message, status: s.reason.statusCode };
        }),
      );
      return reply.code(202).send({ accepted: results.length - refused, refused, results });
    },
  );
}
