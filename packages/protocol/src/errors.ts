import type { ErrorCode } from './frames.js';

/** A frame could not be decoded or is not valid for this protocol version. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    /** Stable code, sent to the peer in an error frame. */
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
