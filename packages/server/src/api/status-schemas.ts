import { notificationSchema } from './schemas.js';

/** JSON schemas of the delivery-status and operator routes (validation and OpenAPI). */

const deviceDelivery = {
  type: 'object',
  properties: {
    device: { type: 'string' },
    stream: { type: 'string' },
    seq: { type: 'integer' },
    state: {
      type: 'string',
      enum: ['pending', 'delivered', 'expired', 'collapsed', 'deleted'],
      description:
        '`delivered`: the device acknowledged it (its app saw it); `expired`: its TTL passed before ' +
        'that; `collapsed`: a newer message with the same collapse key replaced it before delivery; ' +
        '`deleted`: the device was deleted first; `pending`: none of these yet.',
    },
    at: {
      type: 'integer',
      description:
        'When the state was reached (ms since epoch), when known: ack time, expiry time, or the ' +
        'publish time of the replacing message.',
    },
    collapsedBy: { type: 'string', description: 'Id of the message that replaced this one.' },
  },
  required: ['device', 'stream', 'seq', 'state'],
} as const;

const topicDelivery = {
  type: 'object',
  description:
    'A topic publish is one stream entry read by every subscriber: its status is counts over the ' +
    "topic's current subscribers, not a list. `delivered` counts subscribers whose acknowledged " +
    'cursor is at or past the entry (this includes devices that subscribed after the publish); the ' +
    'others are all in `state`.',
  properties: {
    topic: { type: 'string' },
    stream: { type: 'string' },
    seq: { type: 'integer' },
    state: { type: 'string', enum: ['pending', 'expired', 'collapsed'] },
    counts: {
      type: 'object',
      properties: {
        delivered: { type: 'integer' },
        pending: { type: 'integer' },
        expired: { type: 'integer' },
        collapsed: { type: 'integer' },
      },
      required: ['delivered', 'pending', 'expired', 'collapsed'],
    },
  },
  required: ['topic', 'stream', 'seq', 'state', 'counts'],
} as const;

export const messageStatusReply = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    ts: { type: 'integer', description: 'Publish time, ms since epoch.' },
    expiresAt: { type: 'integer' },
    entries: {
      type: 'array',
      items: { type: 'object', properties: { stream: { type: 'string' }, seq: { type: 'integer' } } },
    },
    devices: { type: 'array', items: deviceDelivery, description: 'One per target device.' },
    topics: { type: 'array', items: topicDelivery },
    summary: {
      type: 'object',
      description: 'Target devices by state (topic subscribers not included).',
      properties: {
        pending: { type: 'integer' },
        delivered: { type: 'integer' },
        expired: { type: 'integer' },
        collapsed: { type: 'integer' },
        deleted: { type: 'integer' },
      },
    },
  },
  required: ['id', 'ts', 'expiresAt', 'entries', 'devices', 'topics', 'summary'],
} as const;

export const deviceMessagesQuery = {
  type: 'object',
  properties: {
    limit: {
      type: 'string',
      pattern: '^[1-9][0-9]?$|^100$',
      description: 'At most this many (1–100, default 20).',
    },
  },
  additionalProperties: false,
} as const;

export const deviceMessagesReply = {
  type: 'object',
  properties: {
    deviceId: { type: 'string' },
    messages: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          seq: { type: 'integer' },
          ts: { type: 'integer' },
          expiresAt: { type: 'integer' },
          notification: notificationSchema,
          data: {},
          urgency: { type: 'string' },
          collapseKey: { type: 'string' },
          state: deviceDelivery.properties.state,
          at: { type: 'integer' },
          collapsedBy: { type: 'string' },
        },
        required: ['id', 'seq', 'ts', 'expiresAt', 'state'],
      },
    },
  },
  required: ['deviceId', 'messages'],
} as const;

const int = { type: 'integer' } as const;

export const statsReply = {
  type: 'object',
  properties: {
    now: int,
    startedAt: int,
    version: { type: 'string' },
    connections: {
      type: 'integer',
      description: 'Open sockets, handshakes and sockets being closed included.',
    },
    sessions: { type: 'integer', description: 'Authenticated device sessions.' },
    handshakes: int,
    refused: int,
    idleClosed: int,
    handshakeTimeouts: int,
    protocolErrors: int,
    published: int,
    duplicates: int,
    delivered: int,
    acked: int,
    liveDeliveries: { type: 'integer', description: 'Deliveries timed by the latency histogram.' },
    latencySumMs: { type: 'number', description: 'Sum of their publish→deliver latencies.' },
    store: {
      type: 'object',
      properties: {
        batches: int,
        publishes: int,
        lastBatchSize: int,
        lastBatchMs: { type: 'number' },
        collapsed: int,
        expired: int,
      },
    },
  },
} as const;
