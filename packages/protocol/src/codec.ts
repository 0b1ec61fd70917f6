import { ProtocolError } from './errors.js';
import {
  type ClientFrame,
  type Cursors,
  ERROR_CODES,
  type ErrorCode,
  type Frame,
  type ServerFrame,
  STREAM_PATTERN,
  TOPIC_PATTERN,
  URGENCIES,
  type Urgency,
} from './frames.js';

/** Wire form of a ping that carries nothing. */
export const BARE_PING = 'p';
/** Wire form of a pong that carries nothing. */
export const BARE_PONG = 'P';

/** Largest frame, in bytes of its UTF-8 encoding, the decoders accept; larger input is refused unparsed. */
export const MAX_FRAME_BYTES = 256 * 1024;
/**
 * Largest frame in UTF-16 code units. A string never has more code units than UTF-8 bytes, so this
 * is a cheap first bound; {@link MAX_FRAME_BYTES} is the limit that counts.
 */
export const MAX_FRAME_CHARS = MAX_FRAME_BYTES;

type Json = Record<string, unknown>;

/**
 * Encodes a frame to its wire text. Bare pings and pongs become one character.
 * @example encodeFrame({ t: 'ack', acks: { 'd:abc': 7 } }) // '{"t":"ack","acks":{"d:abc":7}}'
 */
export function encodeFrame(frame: Frame): string {
  if (frame.t === 'ping' && frame.acks === undefined && frame.hb === undefined) return BARE_PING;
  if (frame.t === 'pong') return BARE_PONG;
  return JSON.stringify(frame);
}

/**
 * Decodes a frame a client sent. Strict: unknown kinds, unknown fields and wrong types are refused
 * with a {@link ProtocolError} whose code goes back to the client in an error frame.
 */
export function decodeClientFrame(text: string): ClientFrame {
  if (text === BARE_PING) return { t: 'ping' };
  const o = parseObject(text);
  switch (o.t) {
    case 'hello':
      only(o, ['t', 'v', 'device', 'token', 'cursors', 'hb', 'caps']);
      return {
        t: 'hello',
        v: int(o, 'v', 0),
        device: str(o, 'device', 1, 128),
        token: str(o, 'token', 1, 512),
        ...(o.cursors !== undefined && { cursors: cursors(o.cursors, 'cursors') }),
        ...(o.hb !== undefined && { hb: int(o, 'hb', 1) }),
        ...(o.caps !== undefined && { caps: strings(o.caps, 'caps', MAX_CAPS) }),
      };
    case 'ack':
      // The hottest frame of a server (every device acks): validated in place, no copies.
      only(o, ACK_FIELDS);
      o.acks = cursors(o.acks, 'acks');
      return o as unknown as ClientFrame;
    case 'sub':
    case 'unsub':
      only(o, ['t', 'topic', 'ref']);
      return {
        t: o.t,
        topic: topic(o.topic),
        ...(o.ref !== undefined && { ref: int(o, 'ref', 0) }),
      };
    case 'ping':
      only(o, ['t', 'acks', 'hb']);
      return {
        t: 'ping',
        ...(o.acks !== undefined && { acks: cursors(o.acks, 'acks') }),
        ...(o.hb !== undefined && { hb: int(o, 'hb', 1) }),
      };
    default:
      throw unknownKind(o.t);
  }
}

/**
 * Decodes a frame the server sent. Lenient about unknown fields (a newer server may add some),
 * strict about the fields a client relies on.
 */
export function decodeServerFrame(text: string): ServerFrame {
  if (text === BARE_PONG) return { t: 'pong' };
  const o = parseObject(text);
  switch (o.t) {
    case 'msg': {
      const f: ServerFrame = {
        t: 'msg',
        id: str(o, 'id', 1, 256),
        stream: str(o, 'stream', 1, 256),
        seq: int(o, 'seq', 1),
        ts: int(o, 'ts', 0),
      };
      if (o.exp !== undefined) f.exp = int(o, 'exp', 0);
      if (o.data !== undefined) f.data = o.data;
      // Optional fields a client only passes on are read leniently: a value this client does not
      // understand (a newer server's urgency, say) drops the field, never the message — a dropped
      // message would be acked past by the next one and lost.
      if (isObject(o.notification)) f.notification = o.notification;
      if ((URGENCIES as readonly unknown[]).includes(o.urgency)) f.urgency = o.urgency as Urgency;
      if (typeof o.collapseKey === 'string' && o.collapseKey.length > 0 && o.collapseKey.length <= 256) {
        f.collapseKey = o.collapseKey;
      }
      return f;
    }
    case 'welcome':
      return {
        t: 'welcome',
        v: int(o, 'v', 0),
        session: str(o, 'session', 1, 256),
        hb: int(o, 'hb', 1),
        idle: int(o, 'idle', 1),
        maxPayload: int(o, 'maxPayload', 1),
        // No count bound: a device may follow many topics, and the frame size bounds the list.
        topics: strings(o.topics ?? [], 'topics', Number.POSITIVE_INFINITY),
      };
    case 'pong':
      return { t: 'pong' };
    case 'subbed':
      return {
        t: 'subbed',
        topic: str(o, 'topic', 1, 128),
        seq: int(o, 'seq', 0),
        ...(o.ref !== undefined && { ref: int(o, 'ref', 0) }),
      };
    case 'unsubbed':
      return {
        t: 'unsubbed',
        topic: str(o, 'topic', 1, 128),
        ...(o.ref !== undefined && { ref: int(o, 'ref', 0) }),
      };
    case 'goaway':
      return {
        t: 'goaway',
        reason: str(o, 'reason', 0, 256),
        reconnectAfter: int(o, 'reconnectAfter', 0),
      };
    case 'error': {
      const code = str(o, 'code', 1, 64);
      return {
        t: 'error',
        // A code this client does not know (from a newer server) is reported as INTERNAL.
        code: (ERROR_CODES as readonly string[]).includes(code) ? (code as ErrorCode) : 'INTERNAL',
        message: str(o, 'message', 0, 4096),
        fatal: o.fatal === true,
        ...(o.retryAfter !== undefined && { retryAfter: int(o, 'retryAfter', 0) }),
        ...(o.ref !== undefined && { ref: int(o, 'ref', 0) }),
      };
    }
    default:
      throw unknownKind(o.t);
  }
}

// ── validation helpers ──────────────────────────────────────────────────────────────────────────

function parseObject(text: string): Json {
  if (typeof text !== 'string') throw new ProtocolError('BAD_FRAME', 'frames are text');
  if (
    text.length > MAX_FRAME_CHARS ||
    (text.length * 3 > MAX_FRAME_BYTES && utf8Length(text) > MAX_FRAME_BYTES)
  ) {
    throw new ProtocolError('BAD_FRAME', `frame larger than ${MAX_FRAME_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ProtocolError('BAD_FRAME', 'frame is not valid JSON', { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError('BAD_FRAME', 'frame is not a JSON object');
  }
  const o = value as Json;
  if (typeof o.t !== 'string') throw new ProtocolError('BAD_FRAME', 'frame has no string field "t"');
  return o;
}

function unknownKind(t: unknown): ProtocolError {
  return new ProtocolError('UNKNOWN_FRAME', `unknown frame kind ${JSON.stringify(t)}`);
}

const ACK_FIELDS = ['t', 'acks'] as const;

function only(o: Json, allowed: readonly string[]): void {
  for (const k in o) {
    if (!allowed.includes(k)) {
      throw new ProtocolError('BAD_FRAME', `unknown field "${k}" in ${String(o.t)} frame`);
    }
  }
}

function bad(field: string, want: string): ProtocolError {
  return new ProtocolError('BAD_FRAME', `field "${field}" must be ${want}`);
}

function str(o: Json, k: string, min: number, max: number): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length < min || v.length > max) {
    throw bad(k, `a string of ${min}–${max} characters`);
  }
  return v;
}

function int(o: Json, k: string, min: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw bad(k, `an integer ≥ ${min}`);
  }
  return v === 0 ? 0 : v; // -0 → 0
}

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

function object(v: unknown, k: string): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(k, 'an object');
  return v as Json;
}

function strings(v: unknown, k: string, maxCount: number): string[] {
  if (!Array.isArray(v) || v.length > maxCount || !v.every((s) => typeof s === 'string' && s.length <= 128)) {
    throw bad(k, `an array of at most ${maxCount} strings of at most 128 characters`);
  }
  return v as string[];
}

/** Streams per cursor map a client may present: bounded so a hello cannot be a memory bomb. */
export const MAX_CURSORS = 1024;
/** Capabilities a hello may list. */
export const MAX_CAPS = 64;

/**
 * Validates a cursor map. The object JSON.parse made is returned as is (no copy: acks are the most
 * frequent frame); JSON.parse defines every key as an own data property, "__proto__" included, and
 * the stream pattern refuses that one anyway.
 */
function cursors(v: unknown, k: string): Cursors {
  const o = object(v, k);
  let count = 0;
  for (const s in o) {
    if (++count > MAX_CURSORS) throw bad(k, `an object of at most ${MAX_CURSORS} streams`);
    if (!STREAM_PATTERN.test(s)) {
      throw new ProtocolError('BAD_FRAME', `${k}: ${JSON.stringify(s)} is not a stream name`);
    }
    const seq = o[s];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
      throw bad(`${k}.${s}`, 'an integer ≥ 0');
    }
    if (seq === 0) o[s] = 0; // -0 → 0
  }
  return o as Cursors;
}

function topic(v: unknown): string {
  if (typeof v !== 'string') throw bad('topic', 'a string');
  if (!TOPIC_PATTERN.test(v)) {
    throw new ProtocolError('BAD_TOPIC', `topic must match ${TOPIC_PATTERN.source}`);
  }
  return v;
}

/** Length of the UTF-8 encoding of `text` (a lone surrogate counts as U+FFFD, 3 bytes). */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
