import type { FastifyRequest } from 'fastify';
import { HttpError } from '../errors.js';
import { secretEquals } from '../util/ids.js';

/** An `onRequest` hook that admits only `Authorization: Bearer KEY` with one of `apiKeys`. */
export function adminAuth(apiKeys: readonly string[]): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    const header = req.headers.authorization ?? '';
    const key = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!key)
      throw new HttpError(401, 'UNAUTHORIZED', 'missing API key: send Authorization: Bearer KEY', {
        'WWW-Authenticate': 'Bearer',
      });
    if (!apiKeys.some((k) => secretEquals(k, key)))
      throw new HttpError(401, 'UNAUTHORIZED', 'wrong API key', { 'WWW-Authenticate': 'Bearer' });
  };
}
