import type { FastifyRequest } from 'fastify';
import type { ResolvedOptions } from '../config.js';
import { HttpError, notFound } from '../errors.js';
import type { DeviceRecord } from '../store/types.js';
import { tokenMatches } from '../util/ids.js';
import { accessOf, requireScope, setPrincipal } from './auth.js';

const WWW = { 'WWW-Authenticate': 'Bearer, Device' };

/** The device of `Authorization: Device DEVICE_ID:TOKEN`; 401 when unknown or the token is wrong. */
export async function authenticateDevice(opts: ResolvedOptions, header: string): Promise<DeviceRecord> {
  const cred = header.slice(7).trim();
  const colon = cred.lastIndexOf(':');
  const device = colon > 0 ? await opts.store.getDevice(cred.slice(0, colon)) : undefined;
  if (!device || !tokenMatches(device.tokenHash, cred.slice(colon + 1)))
    throw new HttpError(401, 'UNAUTHORIZED', 'wrong device credential', WWW);
  return device;
}

/**
 * An `onRequest` hook for routes under `/v1/devices/:id/…` that an API key with `scope` (default
 * `admin`; `Bearer KEY`) or the device itself (`Device DEVICE_ID:TOKEN`) may call. `what` names
 * the resource in the 403 a device gets for another device's route; with `requireDevice` a key
 * gets 404 for an unknown device. The principal is then {@link principalOf}(req).
 */
export function adminOrOwnDevice(
  opts: ResolvedOptions,
  what: string,
  requireDevice = false,
  scope: 'admin' | 'publish' | 'status' = 'admin',
) {
  return async (req: FastifyRequest<{ Params: { id: string } }>): Promise<void> => {
    const header = req.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) {
      const p = await accessOf(opts).authenticate(header);
      setPrincipal(req, p);
      requireScope(p, scope);
      if (requireDevice && !(await opts.store.getDevice(req.params.id)))
        throw notFound('UNKNOWN_DEVICE', `no device ${JSON.stringify(req.params.id)}`);
      return;
    }
    if (header.startsWith('Device ')) {
      const device = await authenticateDevice(opts, header);
      if (device.id !== req.params.id)
        throw new HttpError(403, 'FORBIDDEN', `a device may only manage its own ${what}`);
      setPrincipal(req, { id: device.id, device: device.id, scopes: new Set() });
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
