import { describe, expect, it } from 'vitest';
import { HubError } from '../core/errors.js';
import { HttpError } from '../errors.js';
import { QuotaError } from '../store/errors.js';
import { httpErrorOf } from './http-errors.js';

describe('domain errors to HTTP', () => {
  it.each([
    ['UNKNOWN_DEVICE', 404],
    ['TOO_MANY_ENTRIES', 413],
    ['BAD_REQUEST', 400],
  ] as const)('HubError %s is %i with its code and message', (code, status) => {
    const e = httpErrorOf(new HubError(code, 'why'));
    expect(e).toBeInstanceOf(HttpError);
    expect(e).toMatchObject({ statusCode: status, code, message: 'why' });
  });

  it('a full device backlog is 507, other quotas 429', () => {
    expect(httpErrorOf(new QuotaError('DEVICE_BACKLOG_FULL', 'full'))).toMatchObject({ statusCode: 507 });
    expect(httpErrorOf(new QuotaError('TOO_MANY_TOPICS', 'many'))).toMatchObject({ statusCode: 429 });
  });

  it('leaves any other error unchanged', () => {
    const other = new Error('boom');
    expect(httpErrorOf(other)).toBe(other);
  });
});
