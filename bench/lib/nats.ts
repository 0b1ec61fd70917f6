/**
 * The NATS client protocol the harness needs (docs.nats.io, "Client Protocol"): CONNECT, SUB, PUB,
 * PING/PONG out; INFO, MSG, HMSG, PING, PONG, +OK, -ERR in. Plain text lines ending in CRLF; a
 * MSG line is followed by its payload and CRLF. Pure functions on buffers.
 */

export interface NatsHandlers {
  msg(subject: string, reply: string | undefined, payload: Buffer): void;
  ping(): void;
  pong(): void;
  err(line: string): void;
}

/** CONNECT without echo or verbose acks (the server answers nothing until our PING). */
export const natsConnect = (name: string): string =>
  `CONNECT {"verbose":false,"pedantic":false,"echo":false,"lang":"bench","version":"1","protocol":1,"name":${JSON.stringify(name)}}\r\n`;

export const natsPub = (subject: string, reply: string, payload: string): string =>
  `PUB ${subject} ${reply} ${Buffer.byteLength(payload)}\r\n${payload}\r\n`;

export const NATS_PING = Buffer.from('PING\r\n');
export const NATS_PONG = Buffer.from('PONG\r\n');

/** A control line longer than this is a broken stream (INFO is the longest, a few hundred bytes). */
const MAX_LINE = 64 * 1024;

/**
 * Parses whole operations from `buf`, calling `h` for each; returns the unparsed rest (or
 * undefined), or null when the stream is not NATS (a line without an end beyond MAX_LINE).
 */
export function parseNats(buf: Buffer, h: NatsHandlers): Buffer | undefined | null {
  let at = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', at);
    if (nl < 0) {
      if (buf.length - at > MAX_LINE) return null;
      break;
    }
    const c0 = buf[at];
    if (c0 === 0x4d /* MSG */ || c0 === 0x48 /* HMSG */) {
      const parts = buf.toString('latin1', at, nl).split(' ');
      const hmsg = c0 === 0x48;
      const total = Number(parts[parts.length - 1]);
      const hdr = hmsg ? Number(parts[parts.length - 2]) : 0;
      const end = nl + 2 + total;
      if (buf.length < end + 2) break;
      const reply = parts.length === (hmsg ? 6 : 5) ? parts[3] : undefined;
      h.msg(parts[1] ?? '', reply, buf.subarray(nl + 2 + hdr, end));
      at = end + 2;
      continue;
    }
    const line = buf.toString('latin1', at, nl);
    at = nl + 2;
    if (line === 'PING') h.ping();
    else if (line === 'PONG') h.pong();
    else if (line.startsWith('-ERR')) h.err(line);
    // INFO and +OK need nothing.
  }
  return at < buf.length ? Buffer.from(buf.subarray(at)) : undefined;
}
