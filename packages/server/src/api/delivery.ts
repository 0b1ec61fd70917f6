import { deviceStream, parseStream } from '@pushwire/protocol';
import type { EntryFate, PublishRecord, Store } from '../store/types.js';

/** Where one message stands for one device. `deleted`: the device was deleted before delivery. */
export type DeliveryState = 'pending' | 'delivered' | 'expired' | 'collapsed' | 'deleted';

export interface DeviceDelivery {
  device: string;
  stream: string;
  seq: number;
  state: DeliveryState;
  /** When the state was reached, when known: ack time, expiry time, time of the replacing publish. */
  at?: number;
  /** Id of the message that replaced this one (`collapsed`), while the store still has it. */
  collapsedBy?: string;
}

export interface TopicDelivery {
  topic: string;
  stream: string;
  seq: number;
  /** State of the entry for subscribers that have not acknowledged past it. */
  state: 'pending' | 'expired' | 'collapsed';
  /** Current subscribers by state (see the route schema for what `delivered` counts). */
  counts: { delivered: number; pending: number; expired: number; collapsed: number };
}

export interface DeliveryReport {
  devices: DeviceDelivery[];
  topics: TopicDelivery[];
}

/**
 * Delivery state of a device-stream entry:
 *
 *   acknowledged while deliverable ─▶ delivered (at the ack)
 *   replaced by a newer collapse key ─▶ collapsed
 *   exp ≤ now                        ─▶ expired (at exp)
 *   device deleted                   ─▶ deleted
 *   cursor moved past it, no ack     ─▶ skipped: collapsed, removed by the sweep
 *   otherwise                        ─▶ pending
 */
export function deviceState(
  fate: EntryFate,
  seq: number,
  exp: number,
  now: number,
): Omit<DeviceDelivery, 'device' | 'stream' | 'seq'> {
  if (fate.ackedAt !== undefined) return { state: 'delivered', at: fate.ackedAt };
  if (fate.entry === 'collapsed') {
    return {
      state: 'collapsed',
      ...(fate.collapsedBy && { at: fate.collapsedBy.ts, collapsedBy: fate.collapsedBy.id }),
    };
  }
  if (exp <= now) return { state: 'expired', at: exp };
  if (fate.cursor === undefined) return { state: 'deleted' };
  if (fate.cursor >= seq || fate.entry === 'gone') return { state: 'collapsed' };
  return { state: 'pending' };
}

/** Entry state for the subscribers of a topic that are behind it. */
function topicEntryState(fate: EntryFate, exp: number, now: number): TopicDelivery['state'] {
  if (fate.entry === 'collapsed') return 'collapsed';
  if (exp <= now) return 'expired';
  return fate.entry === 'gone' ? 'collapsed' : 'pending';
}

/**
 * Delivery status of a publish: per target device, and per topic as counts over its current
 * subscribers. Stores without {@link Store.entryFate} get what cursors alone tell (no collapse,
 * no ack times, no topic counts).
 */
export async function deliveryReport(
  store: Store,
  record: PublishRecord,
  now: number,
): Promise<DeliveryReport> {
  const report: DeliveryReport = { devices: [], topics: [] };
  for (const { stream, seq } of record.entries) {
    const ref = parseStream(stream);
    if (ref?.kind === 'device') {
      const { device } = ref;
      const state = store.entryFate
        ? deviceState(await store.entryFate(stream, seq), seq, record.exp, now)
        : await cursorOnlyState(store, device, seq, record.exp, now);
      report.devices.push({ device, stream, seq, ...state });
    } else if (ref?.kind === 'topic' && store.entryFate) {
      const fate = await store.entryFate(stream, seq);
      const state = topicEntryState(fate, record.exp, now);
      const counts = { delivered: fate.subscribers?.atOrPast ?? 0, pending: 0, expired: 0, collapsed: 0 };
      counts[state] = fate.subscribers?.behind ?? 0;
      report.topics.push({ topic: ref.topic, stream, seq, state, counts });
    }
  }
  return report;
}

/** For stores without an ack log: a cursor past the entry is taken as its delivery (time unknown). */
async function cursorOnlyState(
  store: Store,
  device: string,
  seq: number,
  exp: number,
  now: number,
): Promise<Omit<DeviceDelivery, 'device' | 'stream' | 'seq'>> {
  if (!(await store.getDevice(device))) return { state: 'deleted' };
  if (((await store.cursorsOf(device))[deviceStream(device)] ?? 0) >= seq) return { state: 'delivered' };
  return exp <= now ? { state: 'expired', at: exp } : { state: 'pending' };
}
