import { createHash } from 'node:crypto';
import type { StoredEntry } from '../store/types.js';
import type { DeviceCommand } from './types.js';

/**
 * Channels and payloads of the LISTEN/NOTIFY bus (pure: no I/O).
 *
 * Channel names are identifiers of at most 63 bytes, while node ids, topics and schemas are longer
 * and free-form: a channel is `pw_` and 40 hex digits of SHA-256 over `schema|kind|name` (schemas
 * and node ids cannot contain `|`; PostgreSQL computes inbox names too, see `inboxSql`).
 *
 * A NOTIFY payload must be shorter than 8000 bytes. Entries are packed into as few payloads as fit;
 * an entry too large alone (a 4 KB payload with a notification, escaped as JSON) is sent by
 * reference: its stream name only, and the receiving node reads the stream from the store for the
 * sessions that follow it, as after a lost notification.
 * @internal
 */

/** Longest payload sent (PostgreSQL refuses 8000 bytes and more). */
export const MAX_PAYLOAD = 7999;

/** One notification: its origin node, then entries, device commands, and/or streams to re-read. */
export interface PgBusMessage {
  o: string;
  e?: StoredEntry[];
  c?: [deviceId: string, cmd: DeviceCommand][];
  /** Streams with new entries too large to carry: re-read them from the store. */
  r?: string[];
}

export class PgChannels {
  constructor(private readonly schema: string) {}

  private name(kind: string, key: string): string {
    return `pw_${createHash('sha256').update(`${this.schema}|${kind}|${key}`).digest('hex').slice(0, 40)}`;
  }

  /**
   * SQL computing {@link inbox} of the column `node`, given the schema as parameter `$param`, so a
   * statement can notify the node holding a device without a round trip to look it up first.
   */
  static inboxSql(param: string): string {
    return `'pw_' || left(encode(sha256(convert_to(${param} || '|node|' || node, 'UTF8')), 'hex'), 40)`;
  }

  /** A node's inbox: device entries and device commands for it. */
  inbox(nodeId: string): string {
    return this.name('node', nodeId);
  }

  /** New entries of a topic stream; nodes with followers listen. */
  topic(stream: string): string {
    return this.name('topic', stream);
  }
}

/**
 * Payloads (JSON, each at most {@link MAX_PAYLOAD} bytes) carrying `entries` from `origin`: as many
 * entries per payload as fit, an entry too large alone by reference.
 */
export function packEntries(origin: string, entries: StoredEntry[]): string[] {
  const head = `{"o":${JSON.stringify(origin)},"e":[`;
  const out: string[] = [];
  const refs = new Set<string>();
  let parts: string[] = [];
  let size = Buffer.byteLength(head) + 2;
  const flush = () => {
    if (parts.length > 0) out.push(`${head}${parts.join(',')}]}`);
    parts = [];
    size = Buffer.byteLength(head) + 2;
  };
  for (const e of entries) {
    const json = JSON.stringify(e);
    const bytes = Buffer.byteLength(json) + 1;
    if (Buffer.byteLength(head) + 2 + bytes > MAX_PAYLOAD) {
      refs.add(e.stream);
      continue;
    }
    if (size + bytes > MAX_PAYLOAD) flush();
    parts.push(json);
    size += bytes;
  }
  flush();
  if (refs.size > 0) out.push(...packRefs(origin, [...refs]));
  return out;
}

/** Payloads naming streams to re-read (split to fit). */
function packRefs(origin: string, streams: string[]): string[] {
  const out: string[] = [];
  let batch: string[] = [];
  for (const s of streams) {
    const next = JSON.stringify({ o: origin, r: [...batch, s] });
    if (Buffer.byteLength(next) > MAX_PAYLOAD && batch.length > 0) {
      out.push(JSON.stringify({ o: origin, r: batch }));
      batch = [s];
    } else batch.push(s);
  }
  if (batch.length > 0) out.push(JSON.stringify({ o: origin, r: batch }));
  return out;
}

/** A payload with one device command. */
export function packCommand(origin: string, deviceId: string, cmd: DeviceCommand): string {
  return JSON.stringify({ o: origin, c: [[deviceId, cmd]] });
}

/** Parses a payload; undefined for anything malformed (never throws). */
export function parsePgMessage(text: string): PgBusMessage | undefined {
  try {
    const m = JSON.parse(text) as PgBusMessage;
    if (typeof m !== 'object' || m === null || typeof m.o !== 'string') return undefined;
    if (m.e !== undefined && !Array.isArray(m.e)) return undefined;
    if (m.c !== undefined && !Array.isArray(m.c)) return undefined;
    if (m.r !== undefined && (!Array.isArray(m.r) || !m.r.every((s) => typeof s === 'string')))
      return undefined;
    return m;
  } catch {
    return undefined;
  }
}
