import { ProtocolError } from './errors.js';
import {
  type ClientFrame,
  type Cursors,
  ERROR_CODES,
  type ErrorCode,
  type Frame,
  type ServerFrame,
  TOPIC_PATTERN,
  URGENCIES,
  type Urgency,
} from './frames.js';

/** Wire form of a ping that carries nothing. */
export const BARE_PING = 'p';
/** Wire form of a pong that carries nothing. */
export const BARE_PONG = 'P';

/** Largest frame, in UTF-16 code units, the decoder looks at; larger input is refused unparsed. */
export const MAX_FRAME_CHARS = 256 * 1024;

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
        ...(o.caps !== undefined && { caps: strings(o.caps, 'caps') }),
      };
    case 'ack':
      only(o, ['t', 'acks']);
      return { t: 'ack', acks: cursors(o.acks, 'acks') };
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
      if (o.notification !== undefined) f.notification = object(o.notification, 'notification');
      if (o.urgency !== undefined) f.urgency = urgency(o.urgency);
      if (o.collapseKey !== undefined) f.collapseKey = str(o, 'collapseKey', 1, 256);
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
        topics: strings(o.topics ?? [], 'topics'),
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
  if (text.length > MAX_FRAME_CHARS) {
    throw new ProtocolError('BAD_FRAME', `frame longer than ${MAX_FRAME_CHARS} characters`);
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

function only(o: Json, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
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
  return v;
}

function object(v: unknown, k: string): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(k, 'an object');
  return v as Json;
}

function strings(v: unknown, k: string): string[] {
  if (!Array.isArray(v) || v.length > 64 || !v.every((s) => typeof s === 'string' && s.length <= 128)) {
    throw bad(k, 'an array of at most 64 strings');
  }
  return v as string[];
}

/** Streams per cursor map a client may present: bounded so a hello cannot be a memory bomb. */
export const MAX_CURSORS = 1024;

function cursors(v: unknown, k: string): Cursors {
  const o = object(v, k);
  const keys = Object.keys(o);
  if (keys.length > MAX_CURSORS) throw bad(k, `an object of at most ${MAX_CURSORS} streams`);
  const out: Cursors = {};
  for (const s of keys) {
    const seq = o[s];
    if (s.length === 0 || s.length > 256) throw bad(`${k}.${s}`, 'a stream name of 1–256 characters');
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
      throw bad(`${k}.${s}`, 'an integer ≥ 0');
    }
    out[s] = seq;
  }
  return out;
}

function topic(v: unknown): string {
  if (typeof v !== 'string' || !TOPIC_PATTERN.test(v)) {
    throw new ProtocolError('BAD_TOPIC', `topic must match ${TOPIC_PATTERN.source}`);
  }
  return v;
}

function urgency(v: unknown): Urgency {
  if (!(URGENCIES as readonly unknown[]).includes(v)) throw bad('urgency', URGENCIES.join(' | '));
  return v as Urgency;
}
