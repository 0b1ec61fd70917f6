import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { StoreError } from '../store/errors.js';
import { type BodyValidator, decodePublishFrame, isRefusal, refusalOf } from './publish-frames.js';

/** A validator that wants an object with `to` (the real one is Fastify's Ajv on publishBody). */
const validate: BodyValidator = Object.assign(
  (body: unknown) => {
    const ok = typeof body === 'object' && body !== null && 'to' in body;
    validate.errors = ok ? null : [{ instancePath: '', message: "must have required property 'to'" }];
    return ok;
  },
  { errors: null },
);
const decode = (text: string, binary = false) =>
  decodePublishFrame(Buffer.from(text), binary, JSON.parse, validate, 4);

describe('decodePublishFrame', () => {
  it('returns the body of a valid frame', () => {
    const body = decode('{"to":{"device":"d"},"data":[1]}');
    expect(isRefusal(body)).toBe(false);
    expect(body).toEqual({ to: { device: 'd' }, data: [1] });
  });

  it('refuses with the HTTP API codes: binary, too deep, not JSON, schema', () => {
    expect(decode('{"to":{}}', true)).toMatchObject({ error: 'UNSUPPORTED_MEDIA_TYPE', status: 415 });
    expect(decode('{"to":[[[[[1]]]]]}')).toMatchObject({ error: 'JSON_TOO_DEEP', status: 400 });
    expect(decode('{"to":')).toMatchObject({ error: 'MALFORMED_JSON', status: 400 });
    expect(decode('')).toMatchObject({ error: 'MALFORMED_JSON', status: 400 });
    expect(decode('{"data":1}')).toEqual({
      error: 'BAD_REQUEST',
      message: "body must have required property 'to'",
      status: 400,
    });
  });
});

describe('refusalOf', () => {
  it('maps HTTP errors with their extra fields, store outages to 503, anything else to undefined', () => {
    expect(refusalOf(new HttpError(429, 'RATE_LIMITED', 'slow', {}, { retryAfter: 250 }))).toEqual({
      retryAfter: 250,
      error: 'RATE_LIMITED',
      message: 'slow',
      status: 429,
    });
    expect(refusalOf(new StoreError('STORE_IO', 'disk full'))).toMatchObject({
      error: 'STORE_IO',
      status: 503,
    });
    expect(refusalOf(new StoreError('STORE_CLOSED', 'closed'))).toBeUndefined();
    expect(refusalOf(new Error('bug'))).toBeUndefined();
  });
});
