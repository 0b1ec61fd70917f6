/**
 * Frame types of the Pushwire wire protocol, version 1.
 *
 * Every frame is one WebSocket text message. A frame is a JSON object whose `t` field names its
 * kind, except the bare heartbeat: a ping with nothing to carry is the single character `p`, its
 * pong the single character `P` (idle cost is a first-class metric). See docs/protocol.md.
 */

/** WebSocket subprotocol that names this protocol version in the handshake. */
export const SUBPROTOCOL = 'pushwire.v1';
/** Protocol version carried in hello and welcome. */
export const PROTOCOL_VERSION = 1;

/** Delivery urgency, as in RFC 8030 section 5.3. */
export type Urgency = 'very-low' | 'low' | 'normal' | 'high';
export const URGENCIES: readonly Urgency[] = ['very-low', 'low', 'normal', 'high'];

/** Fields an app uses to show a local notification. */
export interface NotificationFields {
  title?: string;
  body?: string;
  icon?: string;
  tag?: string;
  url?: string;
  [extra: string]: unknown;
}

/** Cumulative acknowledgements or cursors: stream name → highest sequence number. */
export type Cursors = Record<string, number>;

// ── client → server ─────────────────────────────────────────────────────────────────────────────

/** First frame a client sends: who it is, where it stopped, how often it will ping. */
export interface HelloFrame {
  t: 'hello';
  /** Protocol version the client speaks. */
  v: number;
  device: string;
  token: string;
  /** Per stream, the highest seq the client has processed; the server replays after these. */
  cursors?: Cursors;
  /** Heartbeat interval the client declares, in seconds; the server's idle timer follows it. */
  hb?: number;
  /** Optional capabilities the client supports (reserved for extensions). */
  caps?: string[];
}

/** Cumulative acknowledgement: every message up to and including seq, per stream. */
export interface AckFrame {
  t: 'ack';
  acks: Cursors;
}

/** Subscribe the device to a topic, persistently (like the HTTP API). */
export interface SubscribeFrame {
  t: 'sub';
  topic: string;
  /** Optional request reference echoed in the reply or error. */
  ref?: number;
}

/** Unsubscribe the device from a topic. */
export interface UnsubscribeFrame {
  t: 'unsub';
  topic: string;
  ref?: number;
}

/** Heartbeat. May carry acks and a new declared interval; a bare ping is encoded as `p`. */
export interface PingFrame {
  t: 'ping';
  acks?: Cursors;
  /** New declared heartbeat interval in seconds (adaptive heartbeat). */
  hb?: number;
}

// ── server → client ─────────────────────────────────────────────────────────────────────────────

/** Reply to hello: the session is open. */
export interface WelcomeFrame {
  t: 'welcome';
  v: number;
  /** Session id, for logs. */
  session: string;
  /** Heartbeat interval the server accepted (seconds), clamped to its bounds. */
  hb: number;
  /** The server closes a session silent for this many seconds. */
  idle: number;
  /** Largest message payload the server accepts, in bytes. */
  maxPayload: number;
  /** Topics the device is subscribed to. */
  topics: string[];
}

/** One message of one stream. */
export interface MessageFrame {
  t: 'msg';
  /** Message id: unique per publish; the SDK deduplicates by it. */
  id: string;
  stream: string;
  seq: number;
  /** Publish time, ms since the epoch. */
  ts: number;
  /** Expiry time, ms since the epoch; absent when the message does not expire. */
  exp?: number;
  data?: unknown;
  notification?: NotificationFields;
  urgency?: Urgency;
  collapseKey?: string;
}

/** Reply to a ping. A bare pong is encoded as `P`. */
export interface PongFrame {
  t: 'pong';
}

/** Reply to sub: the device is subscribed; delivery of the topic starts after `seq`. */
export interface SubscribedFrame {
  t: 'subbed';
  topic: string;
  seq: number;
  ref?: number;
}

/** Reply to unsub. */
export interface UnsubscribedFrame {
  t: 'unsubbed';
  topic: string;
  ref?: number;
}

/** The server is going away: reconnect after the given delay (ms), to any node. */
export interface GoawayFrame {
  t: 'goaway';
  reason: string;
  reconnectAfter: number;
}

/** An error. Fatal errors are followed by a close of the socket. */
export interface ErrorFrame {
  t: 'error';
  code: ErrorCode;
  message: string;
  fatal: boolean;
  /** Milliseconds to wait before reconnecting (with RATE_LIMITED). */
  retryAfter?: number;
  ref?: number;
}

/** Stable error codes of protocol error frames. */
export type ErrorCode =
  | 'BAD_FRAME'
  | 'UNKNOWN_FRAME'
  | 'UNSUPPORTED_VERSION'
  | 'HELLO_REQUIRED'
  | 'UNAUTHORIZED'
  | 'HANDSHAKE_TIMEOUT'
  | 'RATE_LIMITED'
  | 'SLOW_CONSUMER'
  | 'BAD_TOPIC'
  | 'TOO_MANY_TOPICS'
  | 'REPLACED'
  | 'FORBIDDEN'
  | 'TOKEN_ROTATED'
  | 'INTERNAL';

export const ERROR_CODES: readonly ErrorCode[] = [
  'BAD_FRAME',
  'UNKNOWN_FRAME',
  'UNSUPPORTED_VERSION',
  'HELLO_REQUIRED',
  'UNAUTHORIZED',
  'HANDSHAKE_TIMEOUT',
  'RATE_LIMITED',
  'SLOW_CONSUMER',
  'BAD_TOPIC',
  'TOO_MANY_TOPICS',
  'REPLACED',
  'FORBIDDEN',
  'TOKEN_ROTATED',
  'INTERNAL',
];

/** WebSocket close codes the server uses. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 4000,
  Unauthorized: 4001,
  HandshakeTimeout: 4008,
  SlowConsumer: 4009,
  IdleTimeout: 4010,
  Replaced: 4011,
  TokenRotated: 4012,
  RateLimited: 4029,
} as const;

export type ClientFrame = HelloFrame | AckFrame | SubscribeFrame | UnsubscribeFrame | PingFrame;
export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | PongFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | GoawayFrame
  | ErrorFrame;
export type Frame = ClientFrame | ServerFrame;

/** Topic names: 1–128 characters of letters, digits and `._~:/-`. */
export const TOPIC_PATTERN = /^[A-Za-z0-9._~:/-]{1,128}$/;
/**
 * Stream names a client may name in cursors and acks: `d:` and a device id of 1–128 characters
 * (UTF-16 code units, as for `hello.device`), or `t:` and a topic name.
 */
export const STREAM_PATTERN = /^(?:d:[\s\S]{1,128}|t:[A-Za-z0-9._~:/-]{1,128})$/;
