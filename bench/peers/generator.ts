/**
 * In-process unicast generator for the peers without a publish API (plain `ws`, Socket.IO): sends
 * `{r:0,t,p}` to random connected clients at a fixed rate, or as fast as the event loop allows.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { benchPayload } from '../lib/util.js';

export interface GenerateSpec {
  rate: number;
  durationMs: number;
  payloadBytes: number;
}

export async function generate(
  spec: GenerateSpec,
  count: () => number,
  sendTo: (index: number, payload: ReturnType<typeof benchPayload>) => void,
): Promise<number> {
  let sent = 0;
  const start = performance.now();
  const end = start + Math.min(spec.durationMs, 120_000);
  const one = () => {
    const n = count();
    if (n === 0) return;
    sendTo(Math.floor(Math.random() * n), benchPayload(0, spec.payloadBytes));
    sent++;
  };
  while (performance.now() < end) {
    if (spec.rate > 0) {
      const due = Math.floor(((performance.now() - start) * spec.rate) / 1000);
      for (let k = 0; sent < due && k < 100_000; k++) one();
      await new Promise((r) => setTimeout(r, 1));
    } else {
      for (let k = 0; k < 500; k++) one();
      await new Promise((r) => setImmediate(r));
    }
  }
  return sent;
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `--port N` from argv (0 when absent). */
export const portArg = (): number => Number(process.argv[process.argv.indexOf('--port') + 1] ?? 0) || 0;
