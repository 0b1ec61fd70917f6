import { type ClientHttp2Session, connect, constants, type IncomingHttpHeaders } from 'node:http2';

/** One response, body read in full (providers answer small JSON bodies). */
export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface H2Options {
  /** Extra CA certificates to trust (PEM): a test's stand-in provider. Default: the system's. */
  ca?: string | Buffer;
  /** A request without a complete answer after this long fails. Default 10 s. */
  timeoutMs?: number;
}

/**
 * HTTP/2 requests to one origin over one long-lived connection, as APNs requires (and FCM
 * allows): opened on first use, replaced after it closes, fails or is sent GOAWAY. The session is
 * unref'd, so it never keeps the process alive.
 */
export class H2Client {
  private session: ClientHttp2Session | undefined;

  constructor(
    readonly origin: string,
    private readonly opts: H2Options = {},
  ) {}

  request(req: {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
  }): Promise<H2Response> {
    return new Promise<H2Response>((resolve, reject) => {
      let session: ClientHttp2Session;
      try {
        session = this.connect();
      } catch (err) {
        reject(err);
        return;
      }
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: req.method,
        [constants.HTTP2_HEADER_PATH]: req.path,
        ...req.headers,
      });
      stream.setTimeout(this.opts.timeoutMs ?? 10_000, () =>
        stream.close(constants.NGHTTP2_CANCEL, () => reject(new Error(`${this.origin}: timeout`))),
      );
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () =>
        resolve({
          status: Number(headers[constants.HTTP2_HEADER_STATUS] ?? 0),
          headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      stream.on('error', reject);
      stream.end(req.body);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private connect(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = connect(this.origin, this.opts.ca ? { ca: this.opts.ca } : {});
    const drop = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on('close', drop);
    session.on('goaway', drop);
    session.on('error', drop); // the pending streams fail with it
    session.unref();
    this.session = session;
    return session;
  }
}

/** Milliseconds of a `Retry-After` header (seconds or an HTTP date), if any. */
export function retryAfterMs(headers: IncomingHttpHeaders, now: number): number | undefined {
  const v = headers['retry-after'];
  if (typeof v !== 'string' || v === '') return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
