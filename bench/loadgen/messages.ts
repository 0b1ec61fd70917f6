/** Messages between the coordinator and load-generator worker processes (IPC, advanced serialisation). */

export type Proto = 'pushwire' | 'ws' | 'socketio' | 'mqtt' | 'nats';

/** One simulated client: a Pushwire device (id + token) or a peer client id. */
export interface ClientSpec {
  id: string;
  token?: string;
  /** Server port of this client when it is not the open command's (a node of several processes). */
  port?: number;
}

export interface ReconnectPolicy {
  /** Full-jitter exponential backoff, as the Pushwire SDK: random(0, min(max, initial · 2^attempt)). */
  initialMs: number;
  maxMs: number;
}

export interface OpenCmd {
  type: 'open';
  proto: Proto;
  host: string;
  port: number;
  /** WebSocket path (ignored for MQTT). */
  path: string;
  /**
   * Source addresses (127.0.0.2, …): client g of the whole open command binds
   * (localAddresses[g % A], PORT_BASE + ⌊g / A⌋) explicitly; empty = the kernel picks.
   */
  localAddresses: string[];
  /** This worker's clients are global indices indexOffset + i · indexStride. */
  indexOffset: number;
  indexStride: number;
  clients: ClientSpec[];
  /** Most handshakes in flight at once. */
  concurrency: number;
  /** New connections per second from this worker; 0 = only bounded by `concurrency`. */
  rate: number;
  /** Heartbeat (s): Pushwire `hb` declared in hello and ping interval; MQTT keep-alive. */
  hb: number;
  /** Topic to follow (Pushwire topic, MQTT broadcast topic). */
  topic: string;
  reconnect: ReconnectPolicy | null;
  /** Keep the seqs received on each device stream (for the lost/duplicate count). */
  trackSeqs: boolean;
  handshakeTimeoutMs: number;
  /** Pushwire: acks are batched and sent this often. */
  ackDelayMs: number;
  /**
   * Pushwire: topic acks wait for the next ping or device ack, alone at the latest this long
   * (the SDK's `topicAckDelay`); at most `ackDelayMs`: topic acks go with the device acks.
   */
  topicAckDelayMs: number;
}

export type PublishMode = 'http' | 'pool' | 'stream' | 'mqtt' | 'nats';

export interface PublishCmd {
  type: 'publish';
  /**
   * http: pipelined keep-alive connections (POST /v1/messages, or /v1/messages/batch when batch > 1);
   * pool: undici's Pool, one message per request, no pipelining; stream: the publisher stream
   * (GET /v1/publish, one WebSocket per connection, `window` unacknowledged per stream); mqtt: QoS 0 PUBLISH;
   * nats: JetStream publish (PUB with a reply inbox), counted on the stream's ack.
   */
  mode: PublishMode;
  host: string;
  port: number;
  apiKey: string;
  /** Device ids (http, pool), MQTT topics (mqtt) or NATS subjects (nats); each message goes to a random one. */
  targets: string[];
  /** Messages per second; 0 = as fast as the server answers (closed loop). */
  rate: number;
  durationMs: number;
  payloadBytes: number;
  /** HTTP keep-alive connections (http: requests are pipelined on each; pool: one at a time). */
  connections: number;
  /** Closed loop: requests outstanding per connection (nats: connections × window publishes awaiting their ack). */
  window: number;
  /** Messages per HTTP request: 1 = POST /v1/messages; more = POST /v1/messages/batch. */
  batch: number;
  /** Return the stream/seq of every accepted message. */
  keepAccepted: boolean;
}

export type Cmd =
  | OpenCmd
  | PublishCmd
  | { type: 'closeAll' }
  | { type: 'reset' }
  | { type: 'epoch' }
  | { type: 'snapshot' }
  | { type: 'latencies' }
  | { type: 'seqs' }
  | { type: 'stopPublish' }
  | { type: 'tune'; concurrency: number }
  | { type: 'exit' };

export type CmdEnvelope = Cmd & { reqId: number };

export interface RoundStat {
  count: number;
  first: number;
  last: number;
}

export interface WorkerStats {
  target: number;
  ready: number;
  connecting: number;
  /** Sessions that became ready (cumulative). */
  opened: number;
  /** Connection attempts that ended before ready (cumulative). */
  failed: number;
  /** Ready sessions that closed (cumulative). */
  dropped: number;
  rateLimited: number;
  errors: Record<string, number>;
  received: number;
  dups: number;
  /** Heartbeat frames sent / received (pings, pongs, engine.io "2"/"3", PINGREQ/PINGRESP). */
  hbOut: number;
  hbIn: number;
  bytesIn: number;
  bytesOut: number;
  rounds: Record<number, RoundStat>;
  /** Sessions ready since the last `epoch` command, and when the last of them became ready. */
  epochReady: number;
  epochLastReadyAt: number;
  lastRecvAt: number;
}

export interface PublishResult {
  sent: number;
  accepted: number;
  failed: number;
  statuses: Record<string, number>;
  elapsedMs: number;
  /** [stream, seq] of accepted messages when `keepAccepted`. */
  acceptedEntries: [string, number][];
  /** Requests still unanswered when the run ended. */
  unanswered: number;
}

/** An empty {@link PublishResult}, for a publisher to fill. */
export function newPublishResult(): PublishResult {
  return { sent: 0, accepted: 0, failed: 0, statuses: {}, elapsedMs: 0, acceptedEntries: [], unanswered: 0 };
}

/** Counts `n` answers (or outcomes) of kind `key` in `res.statuses`. */
export function countStatus(res: PublishResult, key: string, n = 1): void {
  res.statuses[key] = (res.statuses[key] ?? 0) + n;
}

/**
 * Open loop: from `start`, calls `offer()` once for every message due at `rate` per second while
 * `live()` (checked every millisecond), however long the server takes to answer.
 */
export async function openLoop(
  rate: number,
  start: number,
  live: () => boolean,
  offer: () => void,
): Promise<void> {
  let offered = 0;
  while (live()) {
    const due = Math.floor(((performance.now() - start) * rate) / 1000);
    for (; offered < due; offered++) offer();
    await new Promise((r) => setTimeout(r, 1));
  }
}

export type WorkerMsg =
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'reply'; reqId: number; data: unknown; error?: string };
