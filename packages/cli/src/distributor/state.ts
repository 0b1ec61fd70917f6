import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/** One app registered with the distributor. */
export interface Registration {
  /** The app's D-Bus name (its connector). */
  service: string;
  subscriptionId: string;
  endpoint: string;
  vapid?: string;
  description?: string;
}

/** What the distributor keeps across restarts. */
export interface DistributorState {
  server: string;
  deviceId: string;
  token: string;
  /** Highest seq of the device stream handed to the apps (or skipped): the replay starts after it. */
  cursor: number;
  /** By connection token. */
  registrations: Record<string, Registration>;
  /** Subscriptions unregistered while the server was unreachable: revoked at the next chance. */
  revokeLater: string[];
}

/** Reads the state file; undefined when it does not exist. Throws on a corrupt file. */
export function loadState(file: string): DistributorState | undefined {
  if (!existsSync(file)) return undefined;
  const s = JSON.parse(readFileSync(file, 'utf8')) as DistributorState;
  if (typeof s.deviceId !== 'string' || typeof s.token !== 'string' || typeof s.cursor !== 'number')
    throw new Error(`${file} is not a pushwire distributor state file`);
  s.registrations ??= {};
  s.revokeLater ??= [];
  return s;
}

/** Writes the state file atomically (a crash leaves the old or the new one, never half of one). */
export function saveState(file: string, state: DistributorState): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}
