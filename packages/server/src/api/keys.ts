import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { MAX_PATTERNS, patternError } from '../core/topic-patterns.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { type ApiKeyRecord, SCOPES, type Scope } from '../store/api-keys.js';
import { sha256 } from '../util/ids.js';
import { accessOf, principalOf } from './auth.js';
import { errorSchema } from './schemas.js';

/** A scoped API key: `pwk_` and 256 random bits. Shown once; the store keeps its SHA-256. */
export const newScopedKey = (): string => `pwk_${randomBytes(32).toString('base64url')}`;
const newKeyId = (): string => `key_${randomBytes(9).toString('base64url')}`;

const patterns = {
  type: 'array',
  maxItems: MAX_PATTERNS,
  items: { type: 'string', minLength: 1, maxLength: 128 },
} as const;
const targets = {
  type: 'array',
  maxItems: MAX_PATTERNS,
  items: { type: 'string', minLength: 1, maxLength: 256 },
} as const;

const createBody = {
  type: 'object',
  properties: {
    scopes: { type: 'array', minItems: 1, maxItems: 4, uniqueItems: true, items: { enum: [...SCOPES] } },
    label: { type: 'string', minLength: 1, maxLength: 256 },
    topics: patterns,
    users: targets,
    devices: targets,
    subscribe: patterns,
    rate: { type: 'number', exclusiveMinimum: 0, maximum: 1_000_000 },
  },
  required: ['scopes'],
  additionalProperties: false,
} as const;

const keyShown = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    label: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string' } },
    topics: { type: 'array', items: { type: 'string' } },
    users: { type: 'array', items: { type: 'string' } },
    devices: { type: 'array', items: { type: 'string' } },
    subscribe: { type: 'array', items: { type: 'string' } },
    rate: { type: 'number' },
    createdAt: { type: 'integer' },
    lastUsed: { type: ['integer', 'null'] },
    revokedAt: { type: ['integer', 'null'] },
  },
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 429: errorSchema };

interface CreateBody {
  scopes: Scope[];
  label?: string;
  topics?: string[];
  users?: string[];
  devices?: string[];
  subscribe?: string[];
  rate?: number;
}

/** A key as listed: everything but its hash. */
function shown(k: ApiKeyRecord) {
  const { hash: _hash, ...rest } = k;
  return { ...rest, lastUsed: k.lastUsed ?? null, revokedAt: k.revokedAt ?? null };
}

/** `POST`/`GET /v1/keys`, `DELETE /v1/keys/:id`: scoped API keys, admin only. */
export function registerKeyRoutes(app: FastifyInstance, { opts }: { opts: ResolvedOptions }): void {
  const admin = accessOf(opts).require('admin');
  const keys = () => {
    const k = opts.store.apiKeys;
    if (!k) throw new HttpError(501, 'NOT_SUPPORTED', 'this store keeps no API keys');
    return k;
  };

  app.post<{ Body: CreateBody }>(
    '/v1/keys',
    {
      onRequest: admin,
      schema: {
        tags: ['keys'],
        summary: 'Create a scoped API key (shown once: the server keeps only its SHA-256)',
        description:
          'Scopes: `publish` (POST /v1/messages*, restricted by `topics` patterns, `users` and `devices` ' +
          'when any is given), `register` (POST /v1/devices; its devices may subscribe only to `subscribe` ' +
          'patterns), `status` (reads: message status, devices, metrics), `admin` (everything). `rate`: ' +
          'requests per second. Pattern syntax: docs/security.md.',
        body: createBody,
        response: {
          201: { ...keyShown, properties: { ...keyShown.properties, key: { type: 'string' } } },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      for (const p of [...(b.topics ?? []), ...(b.subscribe ?? [])]) {
        const problem = patternError(p);
        if (problem) throw badRequest(problem);
      }
      const key = newScopedKey();
      const record: ApiKeyRecord = {
        id: newKeyId(),
        hash: sha256(key),
        scopes: b.scopes,
        ...(b.label !== undefined && { label: b.label }),
        ...(b.topics !== undefined && { topics: b.topics }),
        ...(b.users !== undefined && { users: b.users }),
        ...(b.devices !== undefined && { devices: b.devices }),
        ...(b.subscribe !== undefined && { subscribe: b.subscribe }),
        ...(b.rate !== undefined && { rate: b.rate }),
        createdAt: opts.clock.now(),
      };
      await keys().create(record);
      opts.logger?.info({ key: record.id, scopes: record.scopes, label: record.label }, 'API key created');
      return reply.code(201).send({ ...shown(record), key });
    },
  );

  app.get(
    '/v1/keys/me',
    {
      onRequest: accessOf(opts).any(),
      schema: {
        tags: ['keys'],
        summary: 'What the key of this request may do (any valid key)',
        description: 'The dashboard shows it. A configured admin key answers id `config`.',
        response: { 200: keyShown, ...errors },
      },
    },
    async (req) => {
      const p = principalOf(req);
      if (p.key) return shown(p.key);
      return { id: p.id, label: 'admin key of the server configuration', scopes: [...p.scopes] };
    },
  );

  app.get(
    '/v1/keys',
    {
      onRequest: admin,
      schema: {
        tags: ['keys'],
        summary: 'List API keys (never the keys themselves), revoked ones included',
        response: {
          200: { type: 'object', properties: { keys: { type: 'array', items: keyShown } } },
          ...errors,
        },
      },
    },
    async () => ({ keys: (await keys().list()).map(shown) }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/keys/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['keys'],
        summary: 'Revoke an API key: refused at once by every node',
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
          required: ['id'],
        },
        response: errors,
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!(await keys().revoke(id, opts.clock.now()))) {
        const known = (await keys().list()).some((k) => k.id === id);
        if (!known) throw notFound('UNKNOWN_KEY', `no key ${JSON.stringify(id)}`);
      } else {
        opts.logger?.info({ key: id }, 'API key revoked');
        accessOf(opts).revoked(id);
      }
      return reply.code(204).send();
    },
  );
}
