/**
 * The autopush WebSocket protocol (Mozilla's push server, as Firefox's `PushServiceWebSocket`
 * speaks it), device side: parsing client messages and building server messages. Pure: no I/O.
 * What is implemented is written down in docs/autopush.md.
 */

/** Subprotocol Firefox offers on the socket. */
export const AUTOPUSH_SUBPROTOCOL = 'push-notification';

/** Largest client message accepted, bytes (Firefox's largest is a hello with broadcasts, a few hundred). */
export const MAX_CLIENT_MESSAGE = 16 * 1024;

/** Why a client message was refused; the session closes with `closeCode` and the code as reason. */
export type AutopushErrorCode = 'BAD_JSON' | 'BAD_MESSAGE' | 'UNKNOWN_MESSAGE_TYPE' | 'HELLO_REQUIRED';

/** A client message that is not valid autopush. */
export class AutopushProtocolError extends Error {
  override readonly name = 'AutopushProtocolError';
  constructor(
    readonly code: AutopushErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** One acknowledged notification of an `ack` message. */
export interface AckUpdate {
  channelID: string;
  version: string;
  /** 100 delivered, 101 decryption error, 102 not delivered (Firefox's codes); absent = 100. */
  code?: number;
}

/** A message a client may send. */
export type ClientMessage =
  | { messageType: 'hello'; uaid?: string; useWebpush: boolean; broadcasts: Record<string, string> }
  | { messageType: 'register'; channelID: string; key?: string }
  | { messageType: 'unregister'; channelID: string; code?: number }
  | { messageType: 'ack'; updates: AckUpdate[] }
  | { messageType: 'nack'; version: string; code?: number }
  | { messageType: 'ping' }
  | { messageType: 'broadcast_subscribe'; broadcasts: Record<string, string> };

/** A channel id: a UUID, with or without dashes (Firefox sends the dashed, lowercase form). */
export const CHANNEL_ID_PATTERN =
  /^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$/;
/** A uaid as this server issues it: 32 hex digits. Anything else in a hello is treated as unknown. */
export const UAID_PATTERN = /^[0-9a-f]{32}$/;
const MAX_BROADCASTS = 64;
const MAX_UPDATES = 256;

const bad = (message: string) => new AutopushProtocolError('BAD_MESSAGE', message);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, name: string, max = 256): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw bad(`${name} must be a non-empty string of at most ${max} characters`);
  return v;
}

function optCode(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 999)
    throw bad(`${name} must be an integer code`);
  return v;
}

function broadcastsOf(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw bad('broadcasts must be an object');
  const entries = Object.entries(v);
  if (entries.length > MAX_BROADCASTS) throw bad(`at most ${MAX_BROADCASTS} broadcasts`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (k.length > 128) throw bad('broadcast ids are at most 128 characters');
    out[k] = typeof val === 'string' ? val.slice(0, 128) : String(val).slice(0, 128);
  }
  return out;
}

function channelOf(v: unknown): string {
  const id = str(v, 'channelID', 64);
  if (!CHANNEL_ID_PATTERN.test(id)) throw bad('channelID must be a UUID');
  return id;
}

/**
 * Parses one text message from a client. Firefox's ping is the empty object `{}` (also accepted:
 * `{"messageType":"ping"}`). Throws {@link AutopushProtocolError}.
 */
export function decodeClientMessage(text: string): ClientMessage {
  if (text.length > MAX_CLIENT_MESSAGE) throw bad(`messages are limited to ${MAX_CLIENT_MESSAGE} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AutopushProtocolError('BAD_JSON', 'message is not JSON');
  }
  if (!isRecord(raw)) throw bad('message must be a JSON object');
  const type = raw.messageType;
  if (type === undefined && Object.keys(raw).length === 0) return { messageType: 'ping' };
  if (typeof type !== 'string') throw bad('messageType must be a string');
  switch (type.toLowerCase()) {
    case 'hello': {
      const uaid = raw.uaid;
      if (uaid !== undefined && uaid !== null && uaid !== '' && typeof uaid !== 'string')
        throw bad('uaid must be a string');
      return {
        messageType: 'hello',
        ...(typeof uaid === 'string' && uaid !== '' && { uaid: uaid.slice(0, 128) }),
        useWebpush: raw.use_webpush === true,
        broadcasts: broadcastsOf(raw.broadcasts),
      };
    }
    case 'register': {
      const key = raw.key;
      if (key !== undefined && key !== null && typeof key !== 'string') throw bad('key must be a string');
      return {
        messageType: 'register',
        channelID: channelOf(raw.channelID),
        ...(typeof key === 'string' && key !== '' && { key: key.slice(0, 256) }),
      };
    }
    case 'unregister': {
      const code = optCode(raw.code, 'code');
      return {
        messageType: 'unregister',
        channelID: channelOf(raw.channelID),
        ...(code !== undefined && { code }),
      };
    }
    case 'ack': {
      if (!Array.isArray(raw.updates)) throw bad('ack needs an updates array');
      if (raw.updates.length > MAX_UPDATES) throw bad(`at most ${MAX_UPDATES} updates per ack`);
      const updates = raw.updates.map((u: unknown): AckUpdate => {
        if (!isRecord(u)) throw bad('each update must be an object');
        const code = optCode(u.code, 'code');
        return {
          channelID: channelOf(u.channelID),
          version: str(u.version, 'version', 128),
          ...(code !== undefined && { code }),
        };
      });
      return { messageType: 'ack', updates };
    }
    case 'nack': {
      const code = optCode(raw.code, 'code');
      return {
        messageType: 'nack',
        version: str(raw.version, 'version', 128),
        ...(code !== undefined && { code }),
      };
    }
    case 'ping':
      return { messageType: 'ping' };
    case 'broadcast_subscribe':
      return { messageType: 'broadcast_subscribe', broadcasts: broadcastsOf(raw.broadcasts) };
    default:
      throw new AutopushProtocolError(
        'UNKNOWN_MESSAGE_TYPE',
        `unknown messageType ${JSON.stringify(type.slice(0, 32))}`,
      );
  }
}

/** The server's answer to a hello. */
export function helloReply(uaid: string): string {
  return JSON.stringify({ messageType: 'hello', uaid, status: 200, use_webpush: true, broadcasts: {} });
}

/** The answer to a register: `pushEndpoint` with status 200, else only the status. */
export function registerReply(channelID: string, status: number, pushEndpoint?: string): string {
  return JSON.stringify({
    messageType: 'register',
    channelID,
    status,
    ...(pushEndpoint !== undefined && { pushEndpoint }),
  });
}

export function unregisterReply(channelID: string, status: number): string {
  return JSON.stringify({ messageType: 'unregister', channelID, status });
}

/** The answer to a ping: the empty object, as autopush sends it. */
export const PONG = '{}';

/** A push message as the client receives it. */
export interface Notification {
  channelID: string;
  version: string;
  /** Seconds the message was kept for. */
  ttl: number;
  /** The aes128gcm body, base64url; absent for a push without payload. */
  data?: string;
  /** The body is not encrypted (a Matrix gateway forward): sent without the encoding header. */
  plain?: boolean;
}

/** A notification message; the body's encoding is RFC 8291's `aes128gcm` (the only one accepted). */
export function notificationMessage(n: Notification): string {
  return JSON.stringify({
    messageType: 'notification',
    channelID: n.channelID,
    version: n.version,
    ttl: n.ttl,
    ...(n.data !== undefined && { data: n.data }),
    ...(n.data !== undefined && !n.plain && { headers: { encoding: 'aes128gcm' } }),
  });
}
