import { InvalidArgumentError, Option } from 'commander';

/** Flags of `pushwire serve` for the server's limits and quotas (docs/operations.md, "Limits and quotas"). */
export interface LimitFlags {
  maxTopicsPerDevice?: number;
  maxDevicesPerUser?: number;
  maxPendingPerDevice?: number;
  maxPendingBytesPerDevice?: number;
  maxEntriesPerRequest?: number;
  unfollowedTopicTtl?: number;
  maxJsonDepth?: number;
  maxWebpushSubscriptions?: number;
  webpushRevokedRetention?: number;
}

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be an integer ≥ 1`);
  return n;
};

/** [flag, environment variable, help] of each limit; defaults are the server's (shown in the help). */
const LIMITS: [string, string, string][] = [
  [
    '--max-topics-per-device <n>',
    'PUSHWIRE_MAX_TOPICS_PER_DEVICE',
    'topics one device may follow (default 200)',
  ],
  ['--max-devices-per-user <n>', 'PUSHWIRE_MAX_DEVICES_PER_USER', 'devices one user may have (default 100)'],
  [
    '--max-pending-per-device <n>',
    'PUSHWIRE_MAX_PENDING_PER_DEVICE',
    'undelivered messages kept for one device (default 10000)',
  ],
  [
    '--max-pending-bytes-per-device <bytes>',
    'PUSHWIRE_MAX_PENDING_BYTES_PER_DEVICE',
    'undelivered payload bytes kept for one device (default 16777216)',
  ],
  [
    '--max-entries-per-request <n>',
    'PUSHWIRE_MAX_ENTRIES_PER_REQUEST',
    'stream entries one publish request may create (default 10000)',
  ],
  [
    '--unfollowed-topic-ttl <seconds>',
    'PUSHWIRE_UNFOLLOWED_TOPIC_TTL',
    'longest a message to a topic nobody follows is kept (default 3600)',
  ],
  ['--max-json-depth <n>', 'PUSHWIRE_MAX_JSON_DEPTH', 'deepest nesting of a JSON request body (default 64)'],
  [
    '--max-webpush-subscriptions <n>',
    'PUSHWIRE_MAX_WEBPUSH_SUBSCRIPTIONS',
    'Web Push subscriptions per device, revoked ones until purged (default 100)',
  ],
  [
    '--webpush-revoked-retention <seconds>',
    'PUSHWIRE_WEBPUSH_REVOKED_RETENTION',
    'how long a revoked Web Push subscription answers 410 before it is purged (default 604800)',
  ],
];

/** The limit flags, to add to the serve command. */
export function limitOptions(): Option[] {
  return LIMITS.map(([flags, env, help]) =>
    new Option(flags, help).env(env).argParser(positive(flags.split(' ')[0]!)),
  );
}

/** The server options the given flags set (unset flags keep the server's defaults). */
export function limitsOf(f: LimitFlags) {
  const defined = <T extends object>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return {
    server: defined({
      maxTopicsPerDevice: f.maxTopicsPerDevice,
      maxDevicesPerUser: f.maxDevicesPerUser,
      maxPendingPerDevice: f.maxPendingPerDevice,
      maxPendingBytesPerDevice: f.maxPendingBytesPerDevice,
      maxEntriesPerRequest: f.maxEntriesPerRequest,
      unfollowedTopicTtl: f.unfollowedTopicTtl,
      maxJsonDepth: f.maxJsonDepth,
    }),
    webPush: defined({
      maxSubscriptionsPerDevice: f.maxWebpushSubscriptions,
      revokedRetention: f.webpushRevokedRetention,
    }),
  };
}
