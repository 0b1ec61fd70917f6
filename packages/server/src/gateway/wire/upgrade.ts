/** The opening handshake of RFC 6455 §4.2, server side, without I/O. */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A base64 encoding of 16 bytes. */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Why an upgrade request was refused, as an HTTP status and an error code for the JSON body. */
export interface UpgradeRefusal {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/**
 * Checks an upgrade request and returns the 101 response head (ending with the blank line), or
 * why it was refused. `protocol` is the subprotocol to confirm (the caller checked it was offered).
 */
export function acceptUpgrade(
  method: string | undefined,
  headers: IncomingHttpHeaders,
  protocol: string,
): { response: string } | { refusal: UpgradeRefusal } {
  if (method !== 'GET') {
    return { refusal: { status: 405, code: 'METHOD_NOT_ALLOWED', message: 'a WebSocket upgrade is a GET' } };
  }
  if (String(headers.upgrade ?? '').toLowerCase() !== 'websocket') {
    return { refusal: { status: 400, code: 'BAD_UPGRADE', message: 'Upgrade header must be websocket' } };
  }
  if (headers['sec-websocket-version'] !== '13') {
    return {
      refusal: {
        status: 426,
        code: 'UPGRADE_REQUIRED',
        message: 'Sec-WebSocket-Version must be 13',
        headers: { 'Sec-WebSocket-Version': '13' },
      },
    };
  }
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !KEY.test(key.trim())) {
    return { refusal: { status: 400, code: 'BAD_UPGRADE', message: 'missing or invalid Sec-WebSocket-Key' } };
  }
  const accept = createHash('sha1')
    .update(key.trim() + GUID)
    .digest('base64');
  return {
    response:
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  };
}
