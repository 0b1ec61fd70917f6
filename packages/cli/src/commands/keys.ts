import { InvalidArgumentError } from 'commander';
import { api, checkServerUrl } from '../http.js';
import { type FlagsOf, type OptionTable, repeatable } from '../options.js';

const SCOPES = ['publish', 'register', 'status', 'admin'];

interface KeyShown {
  id: string;
  label?: string;
  scopes: string[];
  topics?: string[];
  subscribe?: string[];
  rate?: number;
  createdAt: number;
  lastUsed: number | null;
  revokedAt: number | null;
}

/** `--scope publish,status` (repeatable): each a known scope. */
export function parseScopes(v: string, all: string[]): string[] {
  const scopes = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of scopes) {
    if (!SCOPES.includes(s))
      throw new InvalidArgumentError(`unknown scope ${JSON.stringify(s)} (${SCOPES.join(', ')})`);
  }
  return [...new Set([...all, ...scopes])];
}

/** `--rate 10/s`, `--rate 600/min` or `--rate 10`: requests per second. */
export function parseRate(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:\/(s|sec|min|m))?$/.exec(v.trim());
  const n = m ? Number(m[1]) / (m[2] === 'min' || m[2] === 'm' ? 60 : 1) : Number.NaN;
  if (!(n > 0)) throw new InvalidArgumentError('--rate is N/s (or N/min), N > 0');
  return n;
}

/** The options every `keys` command takes: where the server is, and an admin key. */
const CONNECTION = {
  server: { flag: '--server', arg: '<url>', help: 'server base URL', required: true, env: 'PUSHWIRE_SERVER' },
  apiKey: {
    flag: '--api-key',
    arg: '<key>',
    help: 'admin API key (prefer PUSHWIRE_API_KEY: arguments are visible to other local users)',
    required: true,
    env: 'PUSHWIRE_API_KEY',
  },
} as const satisfies OptionTable;

/** The options of `pushwire keys create`. */
export const KEYS_CREATE_OPTIONS = {
  scope: {
    flag: '--scope',
    arg: '<scopes>',
    help: 'publish, register, status, admin (comma-separated, repeatable)',
    required: true,
    parse: parseScopes,
    default: [],
  },
  topics: {
    flag: '--topics',
    arg: '<pattern>',
    help: 'publish: topic pattern it may publish to (repeatable; e.g. news/*)',
    parse: repeatable,
    default: [],
  },
  subscribe: {
    flag: '--subscribe',
    arg: '<pattern>',
    help: 'register: topic pattern its devices may subscribe to (repeatable; e.g. demo/*, user-{user}/*)',
    parse: repeatable,
    default: [],
  },
  rate: {
    flag: '--rate',
    arg: '<n/s>',
    help: 'requests per second (token bucket), e.g. 10/s',
    parse: parseRate,
  },
  label: { flag: '--label', arg: '<text>', help: 'what the key is for' },
  ...CONNECTION,
} as const satisfies OptionTable;

/** The options of `pushwire keys list`. */
export const KEYS_LIST_OPTIONS = {
  ...CONNECTION,
  json: { flag: '--json', help: 'one JSON object per line' },
} as const satisfies OptionTable;

/** The options of `pushwire keys revoke`. */
export const KEYS_REVOKE_OPTIONS = CONNECTION;

type Conn = FlagsOf<typeof CONNECTION>;

/** One call of the keys API; a refusal or an unreachable server is thrown as an `ApiError`. */
function call<T>(f: Conn, method: string, path: string, body?: unknown): Promise<T> {
  return api<T>(checkServerUrl(f.server), f.apiKey, method, path, body);
}

/**
 * `pushwire keys create`: prints the new key alone on stdout (shown once: the server keeps only
 * its hash), and what it may do on stderr.
 */
export async function keysCreateCommand(f: FlagsOf<typeof KEYS_CREATE_OPTIONS>): Promise<void> {
  if (f.scope.length === 0) throw new InvalidArgumentError('give --scope');
  const made = await call<KeyShown & { key: string }>(f, 'POST', 'v1/keys', {
    scopes: f.scope,
    ...(f.label !== undefined && { label: f.label }),
    ...(f.topics.length > 0 && { topics: f.topics }),
    ...(f.subscribe.length > 0 && { subscribe: f.subscribe }),
    ...(f.rate !== undefined && { rate: f.rate }),
  });
  process.stdout.write(`${made.key}\n`);
  process.stderr.write(
    `created ${made.id} (${describe(made)}); the key above is shown only now: the server keeps only its hash\n`,
  );
}

/** `pushwire keys list`: id, label, scopes, created, last used (never the key). */
export async function keysListCommand(f: FlagsOf<typeof KEYS_LIST_OPTIONS>): Promise<void> {
  const { keys } = await call<{ keys: KeyShown[] }>(f, 'GET', 'v1/keys');
  if (f.json) {
    for (const k of keys) process.stdout.write(`${JSON.stringify(k)}\n`);
    return;
  }
  const rows = [
    ['ID', 'LABEL', 'SCOPES', 'CREATED', 'LAST USED', 'STATUS'],
    ...keys.map((k) => [
      k.id,
      k.label ?? '-',
      describe(k),
      iso(k.createdAt),
      k.lastUsed ? iso(k.lastUsed) : 'never',
      k.revokedAt ? `revoked ${iso(k.revokedAt)}` : 'active',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
}

/** `pushwire keys revoke ID`: refused at once by every node. */
export async function keysRevokeCommand(f: Conn, id: string): Promise<void> {
  await call(f, 'DELETE', `v1/keys/${encodeURIComponent(id)}`);
  process.stdout.write(`revoked ${id}\n`);
}

function describe(k: KeyShown): string {
  return [
    k.scopes.join(','),
    ...(k.topics ? [`topics ${k.topics.join(' ')}`] : []),
    ...(k.subscribe ? [`subscribe ${k.subscribe.join(' ')}`] : []),
    ...(k.rate ? [`${k.rate}/s`] : []),
  ].join('; ');
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
