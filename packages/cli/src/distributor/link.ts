import { deviceStream, type MessageFrame, PROTOCOL_VERSION, SUBPROTOCOL } from '@pushwire/protocol';
import WebSocket from 'ws';

/** What the link needs from its owner. */
export interface LinkHost {
  /** Handles one message of the device stream; the link acknowledges it once this resolves. */
  onMessage(msg: MessageFrame): Promise<void>;
  /** The stream cursor to resume from at each hello. */
  cursor(): number;
  onState(state: 'connecting' | 'open' | 'closed', detail?: string): void;
  /** The server refused the device for good (deleted, wrong token). */
  onFatal(code: string, message: string): void;
}

const HEARTBEAT_S = 60;
const MAX_BACKOFF_MS = 30_000;

/**
 * One Pushwire session of the machine (`/v1/connect`): hello with the stored cursor, messages
 * handed to the host one at a time, in order, each acknowledged after it was handled; ping every
 * heartbeat; reconnect with exponential backoff and jitter.
 */
export class PushwireLink {
  private ws: WebSocket | undefined;
  private chain: Promise<void> = Promise.resolve();
  private attempt = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private readonly stream: string;

  constructor(
    private readonly server: string,
    private readonly deviceId: string,
    private readonly token: string,
    private readonly host: LinkHost,
  ) {
    this.stream = deviceStream(deviceId);
  }

  start(): void {
    this.connect();
  }

  /** Closes the socket and waits for the message being handled, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.close(1000, 'distributor stopping');
    await this.chain;
  }

  private connect(): void {
    if (this.stopped) return;
    this.host.onState('connecting');
    const url = `${this.server.replace(/^http/, 'ws').replace(/\/+$/, '')}/v1/connect`;
    const ws = new WebSocket(url, SUBPROTOCOL, { maxPayload: 1024 * 1024, handshakeTimeout: 15_000 });
    this.ws = ws;
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          t: 'hello',
          v: PROTOCOL_VERSION,
          device: this.deviceId,
          token: this.token,
          cursors: { [this.stream]: this.host.cursor() },
          hb: HEARTBEAT_S,
        }),
      );
    });
    ws.on('message', (data, binary) => {
      if (binary) return;
      let frame: { t?: string; [k: string]: unknown };
      try {
        frame = JSON.parse(String(data)) as { t?: string };
      } catch {
        return;
      }
      if (frame.t === 'welcome') {
        this.attempt = 0;
        this.host.onState('open');
        clearInterval(this.pinger);
        this.pinger = setInterval(() => {
          if (ws.readyState === WebSocket.OPEN) ws.send('{"t":"ping"}');
        }, HEARTBEAT_S * 1000);
        this.pinger.unref();
      } else if (frame.t === 'msg' && frame.stream === this.stream) {
        const msg = frame as unknown as MessageFrame;
        this.chain = this.chain.then(async () => {
          if (msg.seq <= this.host.cursor()) return;
          await this.host.onMessage(msg);
          if (ws.readyState === WebSocket.OPEN)
            ws.send(JSON.stringify({ t: 'ack', acks: { [this.stream]: msg.seq } }));
        });
      } else if (frame.t === 'error' && frame.fatal === true) {
        const code = String(frame.code);
        if (code === 'UNAUTHORIZED') {
          this.stopped = true;
          this.host.onFatal(code, String(frame.message));
        }
      }
    });
    ws.on('error', () => {}); // 'close' follows
    ws.on('close', (code, reason) => {
      clearInterval(this.pinger);
      this.host.onState('closed', `${code} ${String(reason)}`);
      if (this.stopped) return;
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }
}
