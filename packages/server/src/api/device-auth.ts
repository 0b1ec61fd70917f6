import type { FastifyRequest } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { HttpError, notFound } from '../errors.js';
import { secretEquals, tokenMatches } from '../util/ids.js';

const WWW = { 'WWW-Authenticate': 'Bearer, Device' };

/**
 * An `onRequest` hook for routes under `/v1/devices/:id/…` that the operator (`Bearer API_KEY`)
 * or the device itself (`Device DEVICE_ID:TOKEN`) may call. `what` names the resource in the 403
 * a device gets for another device's route; with `requireDevice` the operator gets 404 for an
 * unknown device.
 */
export function adminOrOwnDevice(opts: ResolvedOptions, what: string, requireDevice = false) {
  return async (req: FastifyRequest<{ Params: { id: string } }>): Promise<void> => {
    const header = req.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) {
      const key = header.slice(7).trim();
      if (!opts.apiKeys.some((k) => secretEquals(k, key)))
        throw new HttpError(401, 'UNAUTHORIZED', 'wrong API key', WWW);
      if (requireDevice && !(await opts.store.getDevice(req.params.id)))
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(req.params.id)}`);
      return;
    }
    if (header.startsWith('Device ')) {
      const cred = header.slice(7).trim();
      const colon = cred.lastIndexOf(':');
      const device = colon > 0 ? await opts.store.getDevice(cred.slice(0, colon)) : undefined;
      if (!device || !tokenMatches(device.tokenHash, cred.slice(colon + 1)))
        throw new HttpError(401, 'UNAUTHORIZED', 'wrong device credential', WWW);
      if (device.id !== req.params.id)
        throw new HttpError(403, 'FORBIDDEN', `a device may only manage its own ${what}`);
      return;
    }
    throw new HttpError(
      401,
      'UNAUTHORIZED',
      'send Authorization: Bearer API_KEY, or Device DEVICE_ID:TOKEN',
      WWW,
    );
  };
}
