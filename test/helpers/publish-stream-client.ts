import WebSocket from 'ws';

export type StreamAck = { n: number; id?: string; error?: string; status?: number } & Record<string, unknown>;

/**
 * A client of the publisher stream `/v1/publish` on a real socket (the `ws` library): sends frames
 * as given, records the `ready` frame, every ack in arrival order and the close.
 */
export class StreamClient {
  readonly ws: WebSocket;
  ready: Record<string, unknown> | undefined;
  readonly acks: StreamAck[] = [];
  /** Acks frames received (each may carry several acks). */
  ackFrames = 0;
  closed: { code: number; reason: string } | undefined;
  /** The HTTP answer when the upgrade was refused. */
  refused: { status: number; body: Record<string, unknown> } | undefined;
  private waiters: (() => void)[] = [];

  constructor(url: string, key: string | null, protocol: string | null = 'pushwire-publish.v1') {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/publish`, protocol ? [protocol] : [], {
      headers: key === null ? {} : { authorization: `Bearer ${key}` },
      maxPayload: 64 * 1024 * 1024,
    });
    this.ws.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { t: string; acks?: StreamAck[] };
      if (f.t === 'ready') this.ready = f;
      else if (f.t === 'acks') {
        this.ackFrames++;
        this.acks.push(...(f.acks ?? []));
      }
      this.wake();
    });
    this.ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c;
      });
      res.on('end', () => {
        this.refused = { status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} };
        this.wake();
      });
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    this.ws.on('error', () => {});
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** Resolves when `check` holds (checked after every frame), rejects after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!check()) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  opened(): Promise<void> {
    return this.until(() => this.ready !== undefined || this.closed !== undefined, 10_000, 'ready');
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
