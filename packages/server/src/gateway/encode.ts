import type { MessageFrame } from '@pushwire/protocol';
import type { StoredEntry } from '../store/types.js';
import { textFrame } from './wire/frames.js';

/** The msg frame of a stored entry. Encoded once per entry, then written to every recipient. */
export function encodeEntry(e: StoredEntry): string {
  const frame: MessageFrame = { t: 'msg', id: e.id, stream: e.stream, seq: e.seq, ts: e.ts };
  if (e.exp > e.ts) frame.exp = e.exp;
  if (e.data !== undefined) frame.data = e.data;
  if (e.notification !== undefined) frame.notification = e.notification;
  if (e.urgency !== undefined) frame.urgency = e.urgency;
  if (e.collapseKey !== undefined) frame.collapseKey = e.collapseKey;
  return JSON.stringify(frame);
}

/** The msg frame of a stored entry, framed for the socket: the hub's frame encoder (see `FrameEncoder`). */
export function frameEntry(e: StoredEntry): Buffer {
  return textFrame(encodeEntry(e));
}
