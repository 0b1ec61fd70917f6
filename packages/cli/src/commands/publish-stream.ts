import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import WebSocket from 'ws';
import { CommandError, EXIT } from '../exit.js';
import { ApiError } from '../http.js';

/** What a `publish --stream` run did. */
export interface StreamOutcome {
  sent: number;
  acked: number;
  /** Acks carrying an error (the message was refused). */
  refused: number;
}

/**
 * `pushwire publish --stream`: each non-empty line of `input` is one `POST /v1/messages` body,
 * published over the publisher stream `/v1/publish` (docs/protocol.md §12) with at most the
 * server's `maxInFlight` unacknowledged; each ack is written to `output` as one JSON line, in input
 * order. Resolves once every line is acknowledged. A refused upgrade throws an {@link ApiError}; a
 * stream closed before every ack a {@link CommandError} (exit 3: resend the rest, with ids).
 */
export async function publishStream(
  server: string,
  apiKey: string,
  input: Readable,
  output: Writable,
): Promise<StreamOutcome> {
  const url = `${server.replace(/\/+$/, '').replace(/^http/i, 'ws')}/v1/publish`;
  const ws = new WebSocket(url, ['pushwire-publish.v1'], { headers: { authorization: `Bearer ${apiKey}` } });
  const out: StreamOutcome = { sent: 0, acked: 0, refused: 0 };
  let window = 1;
  let wake: (() => void) | undefined;
  let closed: { code: number; reason: string } | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  await new Promise<void>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c;
      });
      res.on('end', () => {
        let body: { error?: string; message?: string } = {};
        try {
          body = JSON.parse(text);
        } catch {}
        const status = res.statusCode ?? 0;
        reject(
          new ApiError(
            status,
            body.error ?? 'HTTP_ERROR',
            `${status} ${body.error ?? ''}: ${body.message ?? text}`,
          ),
        );
      });
    });
    ws.once('error', (err) => reject(new ApiError(0, 'UNREACHABLE', `cannot reach ${url}: ${err.message}`)));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { t: string; maxInFlight?: number; acks?: { error?: string }[] };
      if (f.t === 'ready') {
        window = Math.max(1, f.maxInFlight ?? 1);
        resolve();
      } else if (f.t === 'acks') {
        for (const a of f.acks ?? []) {
          output.write(`${JSON.stringify(a)}\n`);
          out.acked++;
          if (a.error !== undefined) out.refused++;
        }
      }
      poke();
    });
    ws.on('close', (code, reason) => {
      closed = { code, reason: String(reason) };
      poke();
    });
  });
  const until = async (done: () => boolean) => {
    while (!done() && !closed) await new Promise<void>((r) => (wake = r));
  };
  let unsent = false;
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.trim() === '') continue;
    await until(() => out.sent - out.acked < window);
    if (closed) {
      unsent = true;
      break;
    }
    ws.send(line);
    out.sent++;
  }
  await until(() => out.acked === out.sent);
  ws.close(1000);
  if (out.acked < out.sent || unsent) {
    throw new CommandError(
      'STREAM_CLOSED',
      `the stream closed (${closed?.code} ${closed?.reason}) with ${out.sent - out.acked} messages unacknowledged${unsent ? ' and input left unsent' : ''}: resend them (with ids, a stored one is not stored twice)`,
      EXIT.UNREACHABLE,
    );
  }
  return out;
}
