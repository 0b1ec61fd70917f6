import { readFileSync } from 'node:fs';
import { parseServiceAccount, type WakeOptions } from '@pushwire/server';

/** The `serve` settings of wake-ups (serve-settings.ts). */
export interface WakeFlags {
  apnsKey?: string;
  apnsKeyId?: string;
  apnsTeamId?: string;
  apnsTopic?: string;
  apnsUrl?: string;
  apnsSandboxUrl?: string;
  apnsAlert?: string;
  fcmServiceAccount?: string;
  fcmUrl?: string;
  fcmTokenUrl?: string;
  wakeAfter: number;
  wakeMaxPerHour: number;
  wakeRepeatAfter?: number;
}

/** Server wake options from the flags, or undefined when neither APNs nor FCM is configured. */
export function wakeOptionsOf(f: WakeFlags): WakeOptions | undefined {
  const apnsParts = [f.apnsKey, f.apnsKeyId, f.apnsTeamId];
  if (apnsParts.some(Boolean) && !apnsParts.every(Boolean))
    throw new Error('--apns-key, --apns-key-id and --apns-team-id go together');
  const options: WakeOptions = {
    afterSeconds: f.wakeAfter,
    maxPerHour: f.wakeMaxPerHour,
    ...(f.wakeRepeatAfter !== undefined && { repeatAfterSeconds: f.wakeRepeatAfter }),
  };
  if (f.apnsKey && f.apnsKeyId && f.apnsTeamId) {
    let key: string;
    try {
      key = readFileSync(f.apnsKey, 'utf8');
    } catch (err) {
      throw new Error(`--apns-key (apns.key): cannot read ${f.apnsKey}: ${(err as Error).message}`);
    }
    if (!key.includes('-----BEGIN PRIVATE KEY-----'))
      throw new Error(`--apns-key: ${f.apnsKey} is not a PKCS#8 PEM key (Apple's AuthKey_….p8)`);
    options.apns = {
      key,
      keyId: f.apnsKeyId,
      teamId: f.apnsTeamId,
      ...(f.apnsTopic && { topic: f.apnsTopic }),
      ...(f.apnsUrl && { url: f.apnsUrl }),
      ...(f.apnsSandboxUrl && { sandboxUrl: f.apnsSandboxUrl }),
      ...(f.apnsAlert && { alert: f.apnsAlert }),
    };
  }
  if (f.fcmServiceAccount) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(f.fcmServiceAccount, 'utf8'));
    } catch (err) {
      throw new Error(`--fcm-service-account: cannot read ${f.fcmServiceAccount}: ${(err as Error).message}`);
    }
    options.fcm = {
      serviceAccount: parseServiceAccount(json),
      ...(f.fcmUrl && { url: f.fcmUrl }),
      ...(f.fcmTokenUrl && { tokenUrl: f.fcmTokenUrl }),
    };
  }
  return options.apns || options.fcm ? options : undefined;
}
