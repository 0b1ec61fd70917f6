import { readFileSync } from 'node:fs';
import { parseServiceAccount, type WakeOptions } from '@pushwire/server';
import { Option } from 'commander';

/** The `serve` flags of wake-ups. */
export interface WakeFlags {
  apnsKey?: string;
  apnsKeyId?: string;
  apnsTeamId?: string;
  apnsTopic?: string;
  apnsUrl?: string;
  apnsAlert?: string;
  fcmServiceAccount?: string;
  fcmUrl?: string;
  fcmTokenUrl?: string;
  wakeAfter: number;
  wakeMaxPerHour: number;
}

const seconds = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of seconds ≥ 0`);
  return n;
};

/** The options, each with its `PUSHWIRE_*` variable. */
export function wakeCliOptions(): Option[] {
  return [
    new Option('--apns-key <file>', 'APNs signing key (AuthKey_….p8): wake iOS apps').env(
      'PUSHWIRE_APNS_KEY',
    ),
    new Option('--apns-key-id <id>', 'key id of --apns-key').env('PUSHWIRE_APNS_KEY_ID'),
    new Option('--apns-team-id <id>', 'Apple developer team id').env('PUSHWIRE_APNS_TEAM_ID'),
    new Option('--apns-topic <bundle-id>', 'apns-topic for tokens registered without one').env(
      'PUSHWIRE_APNS_TOPIC',
    ),
    new Option(
      '--apns-url <url>',
      'APNs gateway (default Apple production; sandbox tokens: Apple sandbox)',
    ).env('PUSHWIRE_APNS_URL'),
    new Option(
      '--apns-alert <text>',
      'send this fixed visible alert instead of a silent background push',
    ).env('PUSHWIRE_APNS_ALERT'),
    new Option('--fcm-service-account <file>', 'Firebase service account key (JSON): wake Android apps').env(
      'PUSHWIRE_FCM_SERVICE_ACCOUNT',
    ),
    new Option('--fcm-url <url>', 'FCM HTTP v1 base (default https://fcm.googleapis.com)').env(
      'PUSHWIRE_FCM_URL',
    ),
    new Option('--fcm-token-url <url>', "OAuth2 token endpoint (default the key file's token_uri)").env(
      'PUSHWIRE_FCM_TOKEN_URL',
    ),
    new Option('--wake-after <seconds>', 'a message waits this long for a session before a wake is sent')
      .env('PUSHWIRE_WAKE_AFTER')
      .default(5)
      .argParser(seconds('--wake-after')),
    new Option('--wake-max-per-hour <n>', 'wakes per device per hour, at most')
      .env('PUSHWIRE_WAKE_MAX_PER_HOUR')
      .default(12)
      .argParser((v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new Error('--wake-max-per-hour must be an integer ≥ 1');
        return n;
      }),
  ];
}

/** Server wake options from the flags, or undefined when neither APNs nor FCM is configured. */
export function wakeOptionsOf(f: WakeFlags): WakeOptions | undefined {
  const apnsParts = [f.apnsKey, f.apnsKeyId, f.apnsTeamId];
  if (apnsParts.some(Boolean) && !apnsParts.every(Boolean))
    throw new Error('--apns-key, --apns-key-id and --apns-team-id go together');
  const options: WakeOptions = { afterSeconds: f.wakeAfter, maxPerHour: f.wakeMaxPerHour };
  if (f.apnsKey && f.apnsKeyId && f.apnsTeamId) {
    const key = readFileSync(f.apnsKey, 'utf8');
    if (!key.includes('-----BEGIN PRIVATE KEY-----'))
      throw new Error(`--apns-key: ${f.apnsKey} is not a PKCS#8 PEM key (Apple's AuthKey_….p8)`);
    options.apns = {
      key,
      keyId: f.apnsKeyId,
      teamId: f.apnsTeamId,
      ...(f.apnsTopic && { topic: f.apnsTopic }),
      ...(f.apnsUrl && { url: f.apnsUrl }),
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
