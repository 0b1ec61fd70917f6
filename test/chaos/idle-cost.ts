/**
 * What keeping one idle device reachable costs per day, from a heartbeat interval and measured
 * frame sizes. Pure arithmetic; the assumptions are named constants so the docs can quote them.
 *
 * Per packet on the wire: IPv4 20 + TCP 20 + TCP timestamps option 12 = 52 bytes of headers
 * (no IPv6, no link layer, no VPN). A healthy heartbeat is three packets: the ping, the pong
 * (the server answers at once, so its ACK of the ping rides on the pong), and the client's bare
 * ACK of the pong (a delayed ACK with nothing to ride on). A wake-up is one heartbeat timer firing
 * (the pong comes back within the same radio wake).
 */

/** IPv4 + TCP + timestamps option. */
export const HEADER_BYTES = 52;
/** TCP SYN / SYN-ACK with options (MSS, SACK-permitted, timestamps, window scale): 60 bytes each. */
const SYN_BYTES = 60;
/**
 * A lost ping is retransmitted by TCP until the pong deadline gives up on it: with a 10 s deadline
 * and Linux's exponential RTO starting near 200–300 ms, about 5 retransmissions.
 */
export const LOST_PING_RETRANSMITS = 5;
/**
 * TLS 1.3 full handshake (wss://, no session resumption), both ways: ClientHello ≈ 520 B, server
 * flight with a two-certificate RSA chain ≈ 4 KB, Finished ≈ 80 B. An assumption, not measured
 * here (the chaos suite runs plain ws:// on loopback).
 */
export const TLS_HANDSHAKE_BYTES = 4600;
export const TLS_HANDSHAKE_PACKETS = 6;

export interface PolicyCost {
  /** Seconds between heartbeats in the steady state. */
  interval: number;
  /** Silent losses per day (each followed by a reconnect). */
  lossesPerDay: number;
  /** Heartbeat wake-ups per day (timer fires: pings, and pong deadlines that expired). */
  wakeupsPerDay: number;
  /** Bytes per day for healthy heartbeats. */
  heartbeatBytes: number;
  /** Bytes per day for lost pings, teardown and reconnects (with TLS). */
  reconnectBytes: number;
  total: number;
  /** Share of the day the device is unreachable (mapping gone, client unaware). */
  deafShare: number;
}

export interface Measured {
  /** WebSocket bytes of one heartbeat: client ping frame, server pong frame. */
  ping: number;
  pong: number;
  /** WebSocket-level bytes of one reconnect up to welcome (upgrade request/response, hello, welcome). */
  handshakeUp: number;
  handshakeDown: number;
}

/** Bytes of one healthy heartbeat on the wire. */
export function heartbeatCycleBytes(m: Measured): number {
  return HEADER_BYTES + m.ping + (HEADER_BYTES + m.pong) + HEADER_BYTES;
}

/** Bytes of one silent loss: the lost ping and its retransmissions, then a fresh connection. */
export function lossBytes(m: Measured): number {
  const lostPing = (1 + LOST_PING_RETRANSMITS) * (HEADER_BYTES + m.ping);
  const tcp = SYN_BYTES * 2 + HEADER_BYTES;
  const tls = TLS_HANDSHAKE_BYTES + TLS_HANDSHAKE_PACKETS * HEADER_BYTES;
  // Upgrade request, 101 response, hello, welcome: four data packets plus two bare ACKs.
  const ws = m.handshakeUp + m.handshakeDown + 6 * HEADER_BYTES;
  return lostPing + tcp + tls + ws;
}

/**
 * Daily cost of a policy pinging every `interval` s behind a NAT that drops mappings idle for
 * more than `natTimeout` s, with `pongTimeout` s to detect a loss and `extraLossesPerDay` losses
 * on top (the adaptive policy's re-probes).
 */
export function dailyCost(
  m: Measured,
  p: { interval: number; natTimeout: number; pongTimeout: number; extraLossesPerDay?: number },
): PolicyCost {
  const day = 86_400;
  const fails = p.interval > p.natTimeout;
  // A failing policy: every cycle is interval + pong deadline (+ reconnect), and ends in a loss.
  const cycle = fails ? p.interval + p.pongTimeout : p.interval;
  const cycles = day / cycle;
  const losses = (fails ? cycles : 0) + (p.extraLossesPerDay ?? 0);
  const healthy = fails ? 0 : cycles;
  const heartbeatBytes = healthy * heartbeatCycleBytes(m);
  const reconnectBytes = losses * lossBytes(m);
  return {
    interval: p.interval,
    lossesPerDay: round(losses, 1),
    wakeupsPerDay: Math.round(healthy + losses * 2), // a lost ping wakes twice: ping, then deadline
    heartbeatBytes: Math.round(heartbeatBytes),
    reconnectBytes: Math.round(reconnectBytes),
    total: Math.round(heartbeatBytes + reconnectBytes),
    deafShare: fails ? round((cycle - p.natTimeout) / cycle, 2) : 0,
  };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
