import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from './backoff.js';
import { AuthError, ConfigError, ConnectionError, RegistrationError, TimeoutError } from './errors.js';
import { isSilentDeath, lossOfErrorFrame, lossOfException, lossOfSession, retryDelay } from './losses.js';

const frame = (code: Parameters<typeof lossOfErrorFrame>[0]['code'], retryAfter?: number) => ({
  t: 'error' as const,
  code,
  message: 'x',
  fatal: true,
  ...(retryAfter !== undefined && { retryAfter }),
});

describe('loss classification', () => {
  it('UNAUTHORIZED and UNSUPPORTED_VERSION stop the client; RATE_LIMITED waits; the rest reconnects', () => {
    expect(lossOfErrorFrame(frame('UNAUTHORIZED'))).toMatchObject({
      kind: 'fatal',
      error: { code: 'ERR_AUTH', fatal: true },
    });
    expect(lossOfErrorFrame(frame('UNSUPPORTED_VERSION'))).toMatchObject({
      kind: 'fatal',
      error: { code: 'ERR_UNSUPPORTED_VERSION' },
    });
    expect(lossOfErrorFrame(frame('RATE_LIMITED', 5000))).toMatchObject({
      kind: 'rate-limited',
      retryAfter: 5000,
    });
    for (const code of [
      'SLOW_CONSUMER',
      'REPLACED',
      'INTERNAL',
      'HELLO_REQUIRED',
      'HANDSHAKE_TIMEOUT',
    ] as const) {
      expect(lossOfErrorFrame(frame(code))).toMatchObject({
        kind: 'failure',
        error: { serverCode: code, fatal: false },
      });
    }
  });

  it('close codes: 4001 is fatal, 4029 rate limited, others reconnect; pong timeouts are timeouts', () => {
    expect(lossOfSession({ kind: 'closed', code: 4001, reason: '', idle: 0 }, 10).kind).toBe('fatal');
    expect(lossOfSession({ kind: 'closed', code: 4029, reason: '', idle: 0 }, 10).kind).toBe('rate-limited');
    expect(lossOfSession({ kind: 'closed', code: 1001, reason: 'bye', idle: 0 }, 10)).toMatchObject({
      kind: 'failure',
      error: { closeCode: 1001, message: 'the socket closed (1001 bye)' },
    });
    const timeout = lossOfSession({ kind: 'pong-timeout', idle: 60 }, 10);
    expect(timeout.kind === 'failure' && timeout.error).toBeInstanceOf(TimeoutError);
  });

  it('only silent deaths are heartbeat evidence', () => {
    expect(isSilentDeath({ kind: 'pong-timeout', idle: 1 })).toBe(true);
    expect(isSilentDeath({ kind: 'error', error: new Error('x'), idle: 1 })).toBe(true);
    expect(isSilentDeath({ kind: 'closed', code: 1006, reason: '', idle: 1 })).toBe(true);
    expect(isSilentDeath({ kind: 'closed', code: 4010, reason: '', idle: 1 })).toBe(true);
    expect(isSilentDeath({ kind: 'closed', code: 1001, reason: '', idle: 1 })).toBe(false);
    expect(isSilentDeath({ kind: 'closed', code: 4011, reason: '', idle: 1 })).toBe(false);
  });

  it('exceptions: fatal errors and config errors stop; anything else is retried', () => {
    expect(lossOfException(new AuthError('no', { fatal: true })).kind).toBe('fatal');
    expect(lossOfException(new ConfigError('no WebSocket'))).toMatchObject({
      kind: 'fatal',
      error: { fatal: true },
    });
    expect(lossOfException(new RegistrationError('503', 503)).kind).toBe('failure');
    const wrapped = lossOfException(new Error('boom'));
    expect(wrapped.kind === 'failure' && wrapped.error).toBeInstanceOf(ConnectionError);
  });

  it('retry delays: goaway as told, rate limit at least retryAfter, else backoff', () => {
    expect(retryDelay({ kind: 'goaway', after: 2000 }, 9, DEFAULT_BACKOFF, () => 0)).toBe(2000);
    const rl = { kind: 'rate-limited' as const, retryAfter: 8000, error: new ConnectionError('x') };
    expect(retryDelay(rl, 0, DEFAULT_BACKOFF, () => 0)).toBe(8000);
    const f = { kind: 'failure' as const, error: new ConnectionError('x') };
    expect(retryDelay(f, 3, DEFAULT_BACKOFF, () => 0.5)).toBe(2000);
  });
});
