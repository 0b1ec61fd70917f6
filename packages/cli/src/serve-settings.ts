/**
 * Every setting of `pushwire serve`, in one place: its command-line flag, its `PUSHWIRE_*`
 * environment variable, its key in the configuration file, its type, default and meaning. The
 * command's options, the configuration file's validation, `--print-config` and the table in
 * docs/operations.md are all made from this list. (The gateway bounds and limits, and the Web Push
 * and wake-up settings, are written in serve-settings-limits.ts and serve-settings-push.ts.)
 */
import { LIMIT_SETTINGS } from './serve-settings-limits.js';
import { PUSH_SETTINGS } from './serve-settings-push.js';

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
  {
    name: 'maxDevicesPerRegisterKey',
    key: 'admission.register-max-devices',
    flag: '--register-max-devices',
    arg: '<n>',
    type: 'integer',
    min: 0,
    default: 100_000,
    option: 'maxDevicesPerRegisterKey',
    help: 'live devices one register key may have created (0: no limit; admin keys are not limited)',
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
  ...LIMIT_SETTINGS,
  ...PUSH_SETTINGS,
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
