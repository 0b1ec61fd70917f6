import { isTopicStream } from '@pushwire/protocol';
import type { Store } from '../store/types.js';

/**
 * Where each stream starts: the device's cursor from its hello, else the server's record of its
 * last ack. A hello cursor past the stream's head is taken as the head: it cannot be a message
 * the device has, and believing it would skip every message up to it (a cursor near 2^53 would
 * skip all future ones). Heads are read only for cursors ahead of the record. A topic cursor
 * below the record is raised to it: the record starts at the subscription point (the head when
 * the device subscribed) and only moves forward, so a device never reads a topic's history from
 * before it subscribed, whatever cursor it presents.
 */
export async function startCursors(
  store: Pick<Store, 'head'>,
  streams: Set<string>,
  stored: Record<string, number>,
  declared: Record<string, number> = {},
): Promise<Record<string, number>> {
  const cursors: Record<string, number> = { ...stored };
  const ahead: string[] = [];
  for (const [s, seq] of Object.entries(declared)) {
    if (!streams.has(s)) continue;
    const floor = isTopicStream(s) ? (stored[s] ?? 0) : 0;
    cursors[s] = Math.max(seq, floor);
    if (seq > (stored[s] ?? 0)) ahead.push(s);
  }
  const heads = await Promise.all(ahead.map((s) => store.head(s)));
  ahead.forEach((s, i) => {
    cursors[s] = Math.min(cursors[s]!, heads[i]!);
  });
  return cursors;
}
