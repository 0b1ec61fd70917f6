import { TOPIC_PATTERN, URGENCIES } from '@pushwire/protocol';

/** JSON schemas of the HTTP API: the single source of validation (and of the OpenAPI document). */
export const errorSchema = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    /** 403: the scope the key lacks. */
    scope: { type: 'string' },
    /** 429: milliseconds to wait (also `Retry-After`, in seconds). */
    retryAfter: { type: 'integer' },
  },
  required: ['error', 'message'],
} as const;

const idPattern = '^[A-Za-z0-9._~:-]{1,128}$';

export const deviceIdParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: idPattern } },
  required: ['id'],
} as const;

export const topicParams = {
  type: 'object',
  properties: {
    id: { type: 'string', pattern: idPattern },
    topic: { type: 'string', pattern: TOPIC_PATTERN.source },
  },
  required: ['id', 'topic'],
} as const;

export const registerBody = {
  type: ['object', 'null'],
  properties: {
    user: { type: 'string', minLength: 1, maxLength: 256 },
    /** Admin only: topic patterns the device may subscribe to by itself (absent: any topic). */
    subscribe: {
      type: 'array',
      maxItems: 32,
      items: { type: 'string', minLength: 1, maxLength: 128 },
    },
  },
  additionalProperties: false,
} as const;

export const notificationSchema = {
  type: 'object',
  properties: {
    title: { type: 'string', maxLength: 1024 },
    body: { type: 'string', maxLength: 4096 },
    icon: { type: 'string', maxLength: 2048 },
    tag: { type: 'string', maxLength: 256 },
    /** Opened on click: only http(s) (a `javascript:` or `data:` URL is refused with 400). */
    url: { type: 'string', maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://' },
  },
  additionalProperties: true,
} as const;

export const publishBody = {
  type: 'object',
  properties: {
    to: {
      type: 'object',
      properties: {
        device: { type: 'string', pattern: idPattern },
        user: { type: 'string', minLength: 1, maxLength: 256 },
        topic: { type: 'string', pattern: TOPIC_PATTERN.source },
      },
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
    },
    id: { type: 'string', pattern: idPattern },
    data: {},
    notification: notificationSchema,
    ttl: { type: 'integer', minimum: 0 },
    collapseKey: { type: 'string', minLength: 1, maxLength: 256 },
    urgency: { type: 'string', enum: [...URGENCIES] },
  },
  required: ['to'],
  additionalProperties: false,
} as const;

export const publishReply = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    duplicate: { type: 'boolean' },
    ts: { type: 'integer' },
    expiresAt: { type: 'integer' },
    ttl: {
      type: 'integer',
      description: 'TTL applied, in seconds (capped at the maximum; the default when absent)',
    },
    recipients: {
      type: 'integer',
      description: "devices the message is for: the user's devices, or the topic's current subscribers",
    },
    entries: {
      type: 'array',
      items: { type: 'object', properties: { stream: { type: 'string' }, seq: { type: 'integer' } } },
    },
  },
} as const;

/** A device's wake token as shown: provider, only the token's last characters. */
export const wakeReply = {
  type: ['object', 'null'],
  properties: {
    provider: { type: 'string' },
    token: { type: 'string' },
    topic: { type: 'string' },
    environment: { type: 'string' },
    updatedAt: { type: 'integer' },
  },
} as const;

export const deviceReply = {
  type: 'object',
  properties: {
    deviceId: { type: 'string' },
    user: { type: 'string' },
    online: { type: 'boolean' },
    lastSeen: { type: ['integer', 'null'] },
    pending: { type: 'integer' },
    heartbeat: { type: ['integer', 'null'] },
    topics: { type: 'array', items: { type: 'string' } },
    wake: wakeReply,
  },
} as const;
