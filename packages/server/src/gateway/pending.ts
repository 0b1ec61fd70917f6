import type { Duplex } from 'node:stream';
import { CloseCode, type ErrorCode } from '@pushwire/protocol';
import { type WireListener, WireSocket } from './wire/socket.js';

/** What a pending socket reports to the gateway. */
export interface PendingHost {
  hello(p: Pending, data: Buffer, binary: boolean): void;
  forget(p: Pending): void;
}

/**
 * Bytes of frames a device may send between its hello and the welcome (each counted with
 * {@link EARLY_FRAME_COST} for its bookkeeping); they are handled in order after the welcome. More
 * is refused with a fatal RATE_LIMITED, never dropped silently.
 */
const MAX_EARLY_BYTES = 64 * 1024;
const EARLY_FRAME_COST = 64;
/** Retry hint (ms) for a socket refused before its hello (too many pending from its address). */
export const PENDING_RETRY_MS = 1000;

/** A socket between upgrade and welcome. */
export class Pending implements WireListener {
  /** Place in the gateway's handshake deadline queue. */
  queueSlot = -1;
  /** The hello arrived (or the socket closed, or its deadline passed): no longer pending. */
  done = false;
  /** Frames that arrived after the hello, while the handshake reads the store. */
  early: { data: Buffer; binary: boolean }[] | undefined;
  private earlyBytes = 0;

  constructor(
    private readonly gateway: PendingHost,
    readonly socket: WireSocket,
    /** The client address this handshake is counted under. */
    readonly address: string,
  ) {}

  onMessage(data: Buffer, binary: boolean): void {
    if (!this.done) return this.gateway.hello(this, data, binary);
    this.earlyBytes += data.length + EARLY_FRAME_COST;
    if (this.earlyBytes > MAX_EARLY_BYTES) {
      this.early = undefined;
      return sendFatal(
        this.socket,
        'RATE_LIMITED',
        `more than ${MAX_EARLY_BYTES / 1024} KiB of frames before welcome`,
        CloseCode.RateLimited,
        PENDING_RETRY_MS,
      );
    }
    this.early ??= [];
    this.early.push({ data, binary });
  }

  onClose(): void {
    this.gateway.forget(this);
  }
}

/** Sends a fatal error frame and closes the socket. */
export function sendFatal(
  ws: WireSocket,
  code: ErrorCode,
  message: string,
  closeCode: number,
  retryAfter?: number,
): void {
  if (ws.readyState !== WireSocket.OPEN) return;
  ws.send(
    JSON.stringify({
      t: 'error',
      code,
      message,
      fatal: true,
      ...(retryAfter !== undefined && { retryAfter }),
    }),
  );
  ws.close(closeCode, code);
}

export function refuse(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error: code, message });
  const head = [
    `HTTP/1.1 ${status} ${code}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}
