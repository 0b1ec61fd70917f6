/**
 * Every setting of `pushwire serve`, in one place: its command-line flag, its `PUSHWIRE_*`
 * environment variable, its key in the configuration file, its type, default and meaning. The
 * command's options, the configuration file's validation, `--print-config` and the table in
 * docs/operations.md are all made from this list.
 */

/** The type of a setting's value; `seconds` is a number ≥ `min` that may have a fraction. */
export type SettingType = 'string' | 'integer' | 'number' | 'boolean';

export interface Setting {
  /** Property of the resolved configuration (and of `ServeFlags`). */
  name: string;
  /** Key in the configuration file, `section.key` for a key under `[section]`. */
  key: string;
  /** Command-line flag; a boolean's flag is a switch (`--no-…` when it defaults to true). */
  flag: string;
  /** Placeholder of the flag's argument, e.g. `<n>` (none for booleans). */
  arg?: string;
  type: SettingType;
  /** Smallest value of a number. */
  min?: number;
  /** Allowed values of a string. */
  choices?: readonly string[];
  /** Value when set nowhere; absent: unset (or, with `defaultText`, the server decides). */
  default?: string | number | boolean;
  /** How the default is described when it is not a plain value. */
  defaultText?: string;
  /** `value`: never printed; `url`: printed without its password. */
  secret?: 'value' | 'url';
  /** Server option it sets (`createPushwireServer`), `webPush.x` for a Web Push option. */
  option?: string;
  help: string;
}

/** The environment variable of a setting: `PUSHWIRE_` and the flag in capitals. */
export const envOf = (s: Setting): string =>
  `PUSHWIRE_${s.flag
    .replace(/^--(no-)?/, '')
    .replace(/-/g, '_')
    .toUpperCase()}`;

const KiB = 1024;

export const SETTINGS: readonly Setting[] = [
  // Listening and identity.
  {
    name: 'host',
    key: 'host',
    flag: '--host',
    arg: '<host>',
    type: 'string',
    default: '127.0.0.1',
    help: 'address to listen on',
  },
  {
    name: 'port',
    key: 'port',
    flag: '--port',
    arg: '<port>',
    type: 'integer',
    min: 0,
    default: 8787,
    help: 'port to listen on (0: any free port)',
  },
  {
    name: 'data',
    key: 'data',
    flag: '--data',
    arg: '<dir>',
    type: 'string',
    default: './pushwire-data',
    help: 'data directory (store and API key)',
  },
  {
    name: 'apiKey',
    key: 'api-key',
    flag: '--api-key',
    arg: '<key>',
    type: 'string',
    secret: 'value',
    defaultText: 'created on first start, kept in the data dir',
    help: 'admin API key; prefer PUSHWIRE_API_KEY or the generated key file: arguments are visible to other local users',
  },
  {
    name: 'logLevel',
    key: 'log-level',
    flag: '--log-level',
    arg: '<level>',
    type: 'string',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'silent'],
    default: 'info',
    help: 'log level',
  },
  {
    name: 'publicUrl',
    key: 'public-url',
    flag: '--public-url',
    arg: '<url>',
    type: 'string',
    option: 'webPush.publicUrl',
    defaultText: 'scheme and Host of each request',
    help: 'base URL publishers reach this server at (Web Push endpoints and VAPID audience)',
  },
  {
    name: 'autopush',
    key: 'autopush',
    flag: '--autopush',
    type: 'boolean',
    default: false,
    help: 'serve GET /v1/autopush for Firefox and UnifiedPush distributors (off by default: anonymous hellos create devices)',
  },
  {
    name: 'maxPayload',
    key: 'max-payload',
    flag: '--max-payload',
    arg: '<bytes>',
    type: 'integer',
    min: 1,
    default: 4096,
    option: 'maxPayload',
    help: 'largest data+notification of one message',
  },
  {
    name: 'drainWindow',
    key: 'drain-window',
    flag: '--drain-window',
    arg: '<ms>',
    type: 'integer',
    min: 0,
    default: 10_000,
    option: 'drainWindowMs',
    help: 'on SIGTERM, spread client reconnects over this window',
  },
  {
    name: 'metricsPublic',
    key: 'metrics-public',
    flag: '--metrics-public',
    type: 'boolean',
    default: false,
    option: 'metricsPublic',
    help: 'serve GET /metrics without the API key (scrapers on a private network)',
  },
  {
    name: 'sweepInterval',
    key: 'sweep-interval',
    flag: '--sweep-interval',
    arg: '<ms>',
    type: 'integer',
    min: 1,
    default: 60_000,
    option: 'sweepIntervalMs',
    help: 'interval of the expiry and retention sweep',
  },
  // TLS.
  {
    name: 'tlsCert',
    key: 'tls.cert',
    flag: '--tls-cert',
    arg: '<file>',
    type: 'string',
    help: 'PEM certificate chain: serve HTTPS and WSS on the port',
  },
  {
    name: 'tlsKey',
    key: 'tls.key',
    flag: '--tls-key',
    arg: '<file>',
    type: 'string',
    help: 'PEM private key of --tls-cert (the path is shown, never the key)',
  },
  // Cluster.
  {
    name: 'redis',
    key: 'redis.url',
    flag: '--redis',
    arg: '<url>',
    type: 'string',
    secret: 'url',
    help: 'cluster mode: store and bus on Redis (redis://host:port); needs --api-key',
  },
  {
    name: 'postgres',
    key: 'postgres.url',
    flag: '--postgres',
    arg: '<url>',
    type: 'string',
    secret: 'url',
    help: 'cluster mode: store on PostgreSQL (postgres://user:pass@host:port/db), bus on LISTEN/NOTIFY or on --redis; needs --api-key',
  },
  {
    name: 'redisCluster',
    key: 'redis.cluster',
    flag: '--redis-cluster',
    type: 'boolean',
    default: false,
    help: '--redis names one node of a Redis Cluster',
  },
  {
    name: 'nodeId',
    key: 'node-id',
    flag: '--node-id',
    arg: '<id>',
    type: 'string',
    defaultText: 'random',
    help: "this node's id in the cluster",
  },
  // Admission control.
  {
    name: 'admissionRate',
    key: 'admission.rate',
    flag: '--admission-rate',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 5000,
    option: 'admissionRate',
    help: 'admission control: new sessions per second',
  },
  {
    name: 'admissionBurst',
    key: 'admission.burst',
    flag: '--admission-burst',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 5000,
    option: 'admissionBurst',
    help: 'admission control: burst of new sessions above the rate',
  },
  {
    name: 'registerRate',
    key: 'admission.register-rate',
    flag: '--register-rate',
    arg: '<n>',
    type: 'integer',
    min: 0,
    default: 1,
    option: 'registerRate',
    help: 'devices one address (IPv6: one /64) may register per second with a register key (0: no limit)',
  },
  {
    name: 'registerBurst',
    key: 'admission.register-burst',
    flag: '--register-burst',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 20,
    option: 'registerBurst',
    help: 'burst of device registrations per address above --register-rate',
  },
  // Message TTL.
  {
    name: 'defaultTtl',
    key: 'ttl.default',
    flag: '--default-ttl',
    arg: '<seconds>',
    type: 'integer',
    min: 0,
    default: 30 * 24 * 3600,
    option: 'defaultTtl',
    help: 'TTL of a message published without one',
  },
  {
    name: 'maxTtl',
    key: 'ttl.max',
    flag: '--max-ttl',
    arg: '<seconds>',
    type: 'integer',
    min: 0,
    default: 30 * 24 * 3600,
    option: 'maxTtl',
    help: 'largest TTL; larger ones are capped',
  },
  // Heartbeats.
  {
    name: 'defaultHeartbeat',
    key: 'heartbeat.default',
    flag: '--default-heartbeat',
    arg: '<seconds>',
    type: 'integer',
    min: 1,
    default: 60,
    option: 'defaultHeartbeat',
    help: 'heartbeat interval assumed when a client declares none',
  },
  {
    name: 'minHeartbeat',
    key: 'heartbeat.min',
    flag: '--min-heartbeat',
    arg: '<seconds>',
    type: 'integer',
    min: 1,
    default: 1,
    option: 'minHeartbeat',
    help: 'smallest heartbeat interval a client may declare',
  },
  {
    name: 'maxHeartbeat',
    key: 'heartbeat.max',
    flag: '--max-heartbeat',
    arg: '<seconds>',
    type: 'integer',
    min: 1,
    default: 1800,
    option: 'maxHeartbeat',
    help: 'largest heartbeat interval a client may declare',
  },
  {
    name: 'idleGrace',
    key: 'heartbeat.idle-grace',
    flag: '--idle-grace',
    arg: '<seconds>',
    type: 'integer',
    min: 0,
    default: 15,
    option: 'idleGrace',
    help: 'silence past the declared interval before a session is closed',
  },
  // WebSocket gateway bounds.
  {
    name: 'handshakeTimeout',
    key: 'gateway.handshake-timeout',
    flag: '--handshake-timeout',
    arg: '<ms>',
    type: 'integer',
    min: 1,
    default: 10_000,
    option: 'handshakeTimeoutMs',
    help: 'time a new socket has to send hello',
  },
  {
    name: 'maxHelloBytes',
    key: 'gateway.max-hello-bytes',
    flag: '--max-hello-bytes',
    arg: '<bytes>',
    type: 'integer',
    min: 1,
    default: 48 * KiB,
    option: 'maxHelloBytes',
    help: 'largest WebSocket message before the session is open',
  },
  {
    name: 'closeTimeout',
    key: 'gateway.close-timeout',
    flag: '--close-timeout',
    arg: '<ms>',
    type: 'integer',
    min: 1,
    default: 10_000,
    option: 'closeTimeoutMs',
    help: 'time a close handshake may take before the socket is destroyed',
  },
  {
    name: 'maxBufferedBytes',
    key: 'gateway.max-buffered-bytes',
    flag: '--max-buffered-bytes',
    arg: '<bytes>',
    type: 'integer',
    min: 1,
    default: 1024 * KiB,
    option: 'maxBufferedBytes',
    help: 'unsent bytes of a connection before it is closed as a slow consumer',
  },
  {
    name: 'sendHighWaterBytes',
    key: 'gateway.send-high-water-bytes',
    flag: '--send-high-water-bytes',
    arg: '<bytes>',
    type: 'integer',
    min: 1,
    default: 256 * KiB,
    option: 'sendHighWaterBytes',
    help: 'flow control: messages are written while unsent bytes are under this mark (at most half of max-buffered-bytes)',
  },
  {
    name: 'slowConsumerTimeout',
    key: 'gateway.slow-consumer-timeout',
    flag: '--slow-consumer-timeout',
    arg: '<ms>',
    type: 'integer',
    min: 1,
    default: 60_000,
    option: 'slowConsumerTimeoutMs',
    help: 'a connection whose unsent messages have not drained for this long is dropped',
  },
  {
    name: 'maxPendingPerAddress',
    key: 'gateway.max-pending-per-address',
    flag: '--max-pending-per-address',
    arg: '<n>',
    type: 'integer',
    min: 0,
    default: 1024,
    option: 'maxPendingPerAddress',
    help: 'WebSocket handshakes one client address (IPv6: /64) may have open at once; 0: no bound',
  },
  {
    name: 'sessionRequestRate',
    key: 'gateway.session-request-rate',
    flag: '--session-request-rate',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 50,
    option: 'sessionRequestRate',
    help: 'requests (sub, unsub) one session may send per second',
  },
  {
    name: 'sessionRequestBurst',
    key: 'gateway.session-request-burst',
    flag: '--session-request-burst',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 500,
    option: 'sessionRequestBurst',
    help: 'burst of session requests above the rate',
  },
  // Limits and quotas.
  {
    name: 'maxTopicsPerDevice',
    key: 'limits.max-topics-per-device',
    flag: '--max-topics-per-device',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 200,
    option: 'maxTopicsPerDevice',
    help: 'topics one device may follow',
  },
  {
    name: 'maxDevicesPerUser',
    key: 'limits.max-devices-per-user',
    flag: '--max-devices-per-user',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 100,
    option: 'maxDevicesPerUser',
    help: 'devices one user may have',
  },
  {
    name: 'maxPendingPerDevice',
    key: 'limits.max-pending-per-device',
    flag: '--max-pending-per-device',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 10_000,
    option: 'maxPendingPerDevice',
    help: 'undelivered messages kept for one device',
  },
  {
    name: 'maxPendingBytesPerDevice',
    key: 'limits.max-pending-bytes-per-device',
    flag: '--max-pending-bytes-per-device',
    arg: '<bytes>',
    type: 'integer',
    min: 1,
    default: 16 * 1024 * KiB,
    option: 'maxPendingBytesPerDevice',
    help: 'undelivered payload bytes kept for one device',
  },
  {
    name: 'maxEntriesPerRequest',
    key: 'limits.max-entries-per-request',
    flag: '--max-entries-per-request',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 10_000,
    option: 'maxEntriesPerRequest',
    help: 'stream entries one publish request may create',
  },
  {
    name: 'unfollowedTopicTtl',
    key: 'limits.unfollowed-topic-ttl',
    flag: '--unfollowed-topic-ttl',
    arg: '<seconds>',
    type: 'integer',
    min: 1,
    default: 3600,
    option: 'unfollowedTopicTtl',
    help: 'longest a message to a topic nobody follows is kept',
  },
  {
    name: 'maxJsonDepth',
    key: 'limits.max-json-depth',
    flag: '--max-json-depth',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 64,
    option: 'maxJsonDepth',
    help: 'deepest nesting of a JSON request body',
  },
  // Web Push.
  {
    name: 'webPush',
    key: 'webpush.enabled',
    flag: '--no-webpush',
    type: 'boolean',
    default: true,
    help: 'serve Web Push (subscriptions and /wp/ endpoints)',
  },
  {
    name: 'webpushMaxTtl',
    key: 'webpush.max-ttl',
    flag: '--webpush-max-ttl',
    arg: '<seconds>',
    type: 'integer',
    min: 0,
    defaultText: 'ttl.max',
    option: 'webPush.maxTtl',
    help: 'largest Web Push TTL; larger ones are capped and the cap echoed',
  },
  {
    name: 'webpushRate',
    key: 'webpush.rate',
    flag: '--webpush-rate',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 10,
    option: 'webPush.rate',
    help: 'Web Push messages per second to one subscription (per node)',
  },
  {
    name: 'webpushBurst',
    key: 'webpush.burst',
    flag: '--webpush-burst',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 100,
    option: 'webPush.burst',
    help: 'burst of Web Push messages above the rate',
  },
  {
    name: 'maxWebpushSubscriptions',
    key: 'webpush.max-subscriptions',
    flag: '--max-webpush-subscriptions',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 100,
    option: 'webPush.maxSubscriptionsPerDevice',
    help: 'Web Push subscriptions per device, revoked ones until purged',
  },
  {
    name: 'webpushRevokedRetention',
    key: 'webpush.revoked-retention',
    flag: '--webpush-revoked-retention',
    arg: '<seconds>',
    type: 'integer',
    min: 1,
    default: 7 * 24 * 3600,
    option: 'webPush.revokedRetention',
    help: 'how long a revoked Web Push subscription answers 410 before it is purged',
  },
  // Wake-ups.
  {
    name: 'wakeAfter',
    key: 'wake.after',
    flag: '--wake-after',
    arg: '<seconds>',
    type: 'number',
    min: 0,
    default: 5,
    help: 'a message waits this long for a session before a wake is sent',
  },
  {
    name: 'wakeMaxPerHour',
    key: 'wake.max-per-hour',
    flag: '--wake-max-per-hour',
    arg: '<n>',
    type: 'integer',
    min: 1,
    default: 12,
    help: 'wakes per device per hour, at most',
  },
  {
    name: 'wakeRepeatAfter',
    key: 'wake.repeat-after',
    flag: '--wake-repeat-after',
    arg: '<seconds>',
    type: 'number',
    min: 0,
    default: 900,
    help: 'a device that did not answer a wake may be woken again after this long',
  },
  {
    name: 'apnsKey',
    key: 'apns.key',
    flag: '--apns-key',
    arg: '<file>',
    type: 'string',
    help: 'APNs signing key file (AuthKey_….p8): wake iOS apps (the path is shown, never the key)',
  },
  {
    name: 'apnsKeyId',
    key: 'apns.key-id',
    flag: '--apns-key-id',
    arg: '<id>',
    type: 'string',
    help: 'key id of --apns-key',
  },
  {
    name: 'apnsTeamId',
    key: 'apns.team-id',
    flag: '--apns-team-id',
    arg: '<id>',
    type: 'string',
    help: 'Apple developer team id',
  },
  {
    name: 'apnsTopic',
    key: 'apns.topic',
    flag: '--apns-topic',
    arg: '<bundle-id>',
    type: 'string',
    help: 'apns-topic for tokens registered without one',
  },
  {
    name: 'apnsUrl',
    key: 'apns.url',
    flag: '--apns-url',
    arg: '<url>',
    type: 'string',
    defaultText: 'Apple production; sandbox tokens: Apple sandbox',
    help: 'APNs gateway',
  },
  {
    name: 'apnsSandboxUrl',
    key: 'apns.sandbox-url',
    flag: '--apns-sandbox-url',
    arg: '<url>',
    type: 'string',
    defaultText: '--apns-url when given, else Apple sandbox',
    help: 'APNs gateway for tokens registered with environment "sandbox"',
  },
  {
    name: 'apnsAlert',
    key: 'apns.alert',
    flag: '--apns-alert',
    arg: '<text>',
    type: 'string',
    help: 'send this fixed visible alert instead of a silent background push',
  },
  {
    name: 'fcmServiceAccount',
    key: 'fcm.service-account',
    flag: '--fcm-service-account',
    arg: '<file>',
    type: 'string',
    help: 'Firebase service account key file (JSON): wake Android apps (the path is shown, never the key)',
  },
  {
    name: 'fcmUrl',
    key: 'fcm.url',
    flag: '--fcm-url',
    arg: '<url>',
    type: 'string',
    defaultText: 'https://fcm.googleapis.com',
    help: 'FCM HTTP v1 base',
  },
  {
    name: 'fcmTokenUrl',
    key: 'fcm.token-url',
    flag: '--fcm-token-url',
    arg: '<url>',
    type: 'string',
    defaultText: "the key file's token_uri",
    help: 'OAuth2 token endpoint',
  },
];

/** The setting of each file key. */
export const BY_KEY: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.key, s]));

/** Sections of the file (`[tls]`, `[redis]`, …) and their keys. */
export const SECTIONS: ReadonlyMap<string, string[]> = (() => {
  const sections = new Map<string, string[]>();
  for (const s of SETTINGS) {
    const dot = s.key.indexOf('.');
    if (dot < 0) continue;
    const section = s.key.slice(0, dot);
    sections.set(section, [...(sections.get(section) ?? []), s.key.slice(dot + 1)]);
  }
  return sections;
})();

/** The settings as a Markdown table (docs/operations.md is made from it: `node scripts/config-docs.mjs`). */
export function settingsTable(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const code = (text: string) => `\`${text}\``;
  const typeOf = (s: Setting) =>
    s.choices
      ? s.choices.join(' / ')
      : `${s.type === 'number' ? 'number' : s.type}${s.min !== undefined ? ` ≥ ${s.min}` : ''}`;
  const defaultOf = (s: Setting) =>
    s.defaultText ??
    (s.default === undefined
      ? '—'
      : code(typeof s.default === 'string' ? JSON.stringify(s.default) : String(s.default)));
  const rows = SETTINGS.map((s) =>
    [
      code(s.key),
      code(s.arg ? `${s.flag} ${s.arg}` : s.flag),
      code(envOf(s)),
      typeOf(s),
      defaultOf(s),
      `${s.help}${s.secret ? ' (redacted by `--print-config`)' : ''}`,
    ].map(cell),
  );
  const header = ['file key', 'flag', 'environment', 'type', 'default', 'meaning'];
  return [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
