import { decodeServerFrame, type ServerFrame, SUBPROTOCOL } from '@pushwire/protocol';
import WebSocket from 'ws';

/**
 * A bare protocol client on a real socket: sends texts, records decoded frames and the close.
 * For gateway tests that need to send what the SDK never would.
 */
export class RawClient {
  readonly frames: ServerFrame[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly ws: WebSocket;
  private waiters: (() => void)[] = [];

  /** `options` go to `ws` as they are, e.g. `{ ca }` to trust a test CA over WSS. */
  constructor(url: string, protocol: string | null = SUBPROTOCOL, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/connect`, protocol ? [protocol] : [], options);
    this.ws.on('message', (d) => {
      this.frames.push(decodeServerFrame(d.toString()));
      this.wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    this.ws.on('error', () => {});
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
      );
      this.ws.once('error', reject);
    });
  }

  send(text: string | Buffer): void {
    this.ws.send(text);
  }

  hello(device: string, token: string, extra: Record<string, unknown> = {}): void {
    this.send(JSON.stringify({ t: 'hello', v: 1, device, token, ...extra }));
  }

  /** Waits for a frame matching `pred` (searching frames already received too). */
  async next<T extends ServerFrame['t']>(
    t: T,
    timeoutMs = 5000,
    pred: (f: Extract<ServerFrame, { t: T }>) => boolean = () => true,
  ): Promise<Extract<ServerFrame, { t: T }>> {
    const end = Date.now() + timeoutMs;
    let from = 0;
    for (;;) {
      for (; from < this.frames.length; from++) {
        const f = this.frames[from]!;
        if (f.t === t && pred(f as Extract<ServerFrame, { t: T }>)) {
          this.frames.splice(from, 1);
          return f as Extract<ServerFrame, { t: T }>;
        }
      }
      if (this.closed) throw new Error(`closed (${this.closed.code}) before a ${t} frame`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ${t} frame within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  async whenClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > end) throw new Error('socket not closed in time');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
