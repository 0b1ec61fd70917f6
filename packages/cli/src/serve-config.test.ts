import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveOptions } from '../../server/src/config.js';
import type { Store } from '../../server/src/store/types.js';
import { WEB_PUSH_DEFAULTS } from '../../server/src/webpush/routes.js';
import {
  ConfigError,
  formatConfig,
  MAX_CONFIG_BYTES,
  parseConfigText,
  readConfigFile,
  resolveConfig,
} from './serve-config.js';
import { envOf, SETTINGS, type Setting, settingsTable } from './serve-settings.js';

const dir = mkdtempSync(join(tmpdir(), 'pushwire-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const fromFile = (text: string) => ({ name: 'test.toml', values: parseConfigText(text, 'test.toml') });
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('serve settings: one list', () => {
  it('has one name, flag, variable and file key per setting', () => {
    const picks: ((s: Setting) => string)[] = [(s) => s.name, (s) => s.flag, envOf, (s) => s.key];
    for (const pick of picks) {
      const all = SETTINGS.map(pick);
      expect(new Set(all).size, 'duplicates').toBe(all.length);
    }
  });

  it("covers every server option a command line can set, with the server's own defaults", () => {
    const resolved = resolveOptions({ store: {} as Store, apiKeys: [] }) as unknown as Record<
      string,
      unknown
    >;
    const notSettings = ['store', 'bus', 'apiKeys', 'logger', 'clock', 'demoKey'];
    const options = new Map(SETTINGS.filter((s) => s.option).map((s) => [s.option!, s]));
    for (const [name, value] of Object.entries(resolved)) {
      if (notSettings.includes(name)) continue;
      const s = options.get(name);
      expect(s, `server option ${name} has no setting`).toBeDefined();
      expect(s!.default, `default of ${s!.key}`).toEqual(value);
    }
    expect(options.get('webPush.maxSubscriptionsPerDevice')!.default).toBe(
      WEB_PUSH_DEFAULTS.maxSubscriptionsPerDevice,
    );
    expect(options.get('webPush.revokedRetention')!.default).toBe(WEB_PUSH_DEFAULTS.revokedRetention);
  });

  it('docs/operations.md carries the table made from the list', () => {
    const doc = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');
    const cells = (table: string) =>
      table
        .split('\n')
        .filter((l) => l.startsWith('|') && !/^\|[\s|:-]+\|$/.test(l))
        .map((l) =>
          l
            .slice(1, -1)
            .split(/(?<!\\)\|/)
            .map((c) => c.trim()),
        );
    const block = doc.slice(doc.indexOf('serve-settings:start'), doc.indexOf('serve-settings:end'));
    expect(cells(block), 'run `node scripts/config-docs.mjs` after changing serve-settings.ts').toEqual(
      cells(settingsTable()),
    );
  });
});

describe('serve configuration: precedence flag > env > file > default', () => {
  const text = 'port = 1111\nmax-payload = 100\n[limits]\nmax-topics-per-device = 7\n';

  it('takes each setting from the first source that gives it', () => {
    const c = resolveConfig({
      flags: { port: '3333' },
      env: { PUSHWIRE_PORT: '2222', PUSHWIRE_MAX_PAYLOAD: '200', PUSHWIRE_HOST: '' },
      file: fromFile(text),
    });
    expect(c.values).toMatchObject({ port: 3333, maxPayload: 200, maxTopicsPerDevice: 7, host: '127.0.0.1' });
    expect(c.sources).toMatchObject({
      port: 'flag',
      maxPayload: 'env',
      maxTopicsPerDevice: 'file',
      host: 'default',
    });
    const envOnly = resolveConfig({ flags: {}, env: { PUSHWIRE_PORT: '2222' }, file: fromFile(text) });
    expect([envOnly.values.port, envOnly.sources.port]).toEqual([2222, 'env']);
    const fileOnly = resolveConfig({ flags: {}, env: {}, file: fromFile(text) });
    expect([fileOnly.values.port, fileOnly.sources.port]).toEqual([1111, 'file']);
    const none = resolveConfig({ flags: {}, env: {} });
    expect([none.values.port, none.sources.port]).toEqual([8787, 'default']);
    expect(none.values.apiKey).toBeUndefined();
  });

  it('booleans: a switch, or 1/0 true/false yes/no on/off in the environment', () => {
    const file = fromFile('metrics-public = true\n[webpush]\nenabled = false\n');
    expect(resolveConfig({ flags: {}, env: {}, file }).values).toMatchObject({
      metricsPublic: true,
      webPush: false,
    });
    const env = resolveConfig({
      flags: {},
      env: { PUSHWIRE_METRICS_PUBLIC: 'off', PUSHWIRE_WEBPUSH: 'yes' },
      file,
    });
    expect(env.values).toMatchObject({ metricsPublic: false, webPush: true });
    expect(resolveConfig({ flags: { webPush: false }, env: { PUSHWIRE_WEBPUSH: '1' } }).values.webPush).toBe(
      false,
    );
    expect(refusal(() => resolveConfig({ flags: {}, env: { PUSHWIRE_METRICS_PUBLIC: 'maybe' } }))).toMatch(
      /^PUSHWIRE_METRICS_PUBLIC must be true or false/,
    );
  });
});

describe('serve configuration: refusals name the key', () => {
  const cases: [string, string, RegExp][] = [
    ['unknown top-level key', 'prot = 80', /unknown key "prot"/],
    ['unknown key in a section', '[limits]\nmax-topic = 3', /unknown key "limits.max-topic"/],
    ['unknown section', '[database]\nurl = "x"', /unknown key "database"/],
    [
      'a section key at the top level',
      'max-topics-per-device = 3',
      /unknown key "max-topics-per-device" \(did you mean "limits.max-topics-per-device"\?\)/,
    ],
    [
      'a top-level key inside a section',
      '[limits]\nport = 3',
      /unknown key "limits.port" \(did you mean "port"\?\)/,
    ],
    [
      'a section given a value',
      'webpush = 5',
      /"webpush" must be a table \(\[webpush\]\) of enabled, max-ttl/,
    ],
    ['a section given an array', 'limits = [1, 2]', /"limits" must be a table .* not an array/],
    ['a value given a table', '[port]\nx = 1', /"port" must be an integer ≥ 0, not a table/],
    [
      'a nested table in a section',
      '[limits.max-json-depth]\nx = 1',
      /"limits.max-json-depth" must be an integer ≥ 1, not a table/,
    ],
    ['a string for an integer', 'port = "80"', /"port" must be an integer ≥ 0, not the string "80"/],
    [
      'a fraction for an integer',
      'max-payload = 1.5',
      /"max-payload" must be an integer ≥ 1, not number 1.5/,
    ],
    [
      'a value under the minimum',
      '[admission]\nrate = 0',
      /"admission.rate" must be an integer ≥ 1, not number 0/,
    ],
    ['a negative number', '[wake]\nafter = -1', /"wake.after" must be a number ≥ 0/],
    [
      'an integer beyond 2^53',
      'port = 9007199254740993',
      /config test.toml:1:\d+: not valid TOML: integer value cannot be represented losslessly/,
    ],
    [
      'a string for a boolean',
      'metrics-public = "yes"',
      /"metrics-public" must be true or false, not the string "yes"/,
    ],
    ['a value outside the choices', 'log-level = "loud"', /"log-level" must be one of trace, debug, info/],
    ['a date', 'host = 1979-05-27', /"host" must be a string, not a date/],
    ['invalid syntax', 'port = = 1', /config test.toml:1:8: not valid TOML: invalid value/],
    ['an unterminated string', 'host = "abc', /not valid TOML/],
    ['a duplicated key', 'port = 1\nport = 2', /not valid TOML/],
  ];
  for (const [what, text, message] of cases) {
    it(what, () => {
      expect(refusal(() => parseConfigText(text, 'test.toml'))).toMatch(message);
    });
  }

  it('bounds set to contradict each other (a default beyond a bound set is capped by the server)', () => {
    const both = () =>
      resolveConfig({ flags: { minHeartbeat: '100' }, env: {}, file: fromFile('[heartbeat]\nmax = 30') });
    expect(refusal(both)).toBe(
      'heartbeat.min (--min-heartbeat, flag) = 100 is more than heartbeat.max (--max-heartbeat, file) = 30',
    );
    const ttl = () =>
      resolveConfig({ flags: {}, env: { PUSHWIRE_DEFAULT_TTL: '100' }, file: fromFile('[ttl]\nmax = 10') });
    expect(refusal(ttl)).toMatch(/^ttl.default .* = 100 is more than ttl.max \(--max-ttl, file\) = 10$/);
    // Only one side set: the 30-day default TTL is capped by a week's ttl.max, no refusal.
    expect(resolveConfig({ flags: {}, env: {}, file: fromFile('[ttl]\nmax = 604800') }).values).toMatchObject(
      {
        defaultTtl: 30 * 24 * 3600,
        maxTtl: 604800,
      },
    );
  });

  it('flags and variables are checked the same way', () => {
    expect(refusal(() => resolveConfig({ flags: { port: 'eighty' }, env: {} }))).toBe(
      '--port must be an integer ≥ 0, not the string "eighty"',
    );
    expect(refusal(() => resolveConfig({ flags: {}, env: { PUSHWIRE_WAKE_MAX_PER_HOUR: '0' } }))).toMatch(
      /^PUSHWIRE_WAKE_MAX_PER_HOUR must be an integer ≥ 1/,
    );
    expect(refusal(() => resolveConfig({ flags: {}, env: { PUSHWIRE_LOG_LEVEL: 'loud' } }))).toMatch(
      /^PUSHWIRE_LOG_LEVEL must be one of/,
    );
  });

  it('hostile files: huge, not a file, not UTF-8, missing, deeply nested, many keys', () => {
    const huge = file('huge.toml', Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x23)); // all '#': a comment
    expect(refusal(() => readConfigFile(huge))).toMatch(
      /bytes; a configuration file is at most 1048576 bytes/,
    );
    const sub = join(dir, 'a-dir.toml');
    mkdirSync(sub);
    expect(refusal(() => readConfigFile(sub))).toMatch(/not a regular file/);
    expect(
      refusal(() => readConfigFile(file('latin1.toml', Buffer.from('host = "caf\xe9"', 'latin1')))),
    ).toMatch(/not UTF-8/);
    expect(refusal(() => readConfigFile(join(dir, 'missing.toml')))).toMatch(/cannot open: ENOENT/);
    const deep = `port = ${'['.repeat(5000)}${']'.repeat(5000)}`;
    expect(refusal(() => readConfigFile(file('deep.toml', deep)))).toMatch(
      /not valid TOML: .*excessively nested/,
    );
    const many = Array.from({ length: 20_000 }, (_, i) => `k${i} = ${i}`).join('\n');
    expect(refusal(() => readConfigFile(file('many.toml', many)))).toMatch(/unknown key "k0"/);
    expect(readConfigFile(file('ok.toml', '\ufeffport = 1\n')).get('port')).toBe(1);
  });
});

describe('serve --print-config', () => {
  it('prints a TOML file of the effective values with their sources, secrets redacted', () => {
    const c = resolveConfig({
      flags: { apiKey: 'pw_very_secret_key' },
      env: { PUSHWIRE_REDIS: 'redis://admin:hunter2@redis.internal:6379/0' },
      file: fromFile(
        '[apns]\nkey = "/etc/pushwire/AuthKey.p8"\nkey-id = "K"\n[limits]\nmax-json-depth = 9\n',
      ),
    });
    const out = formatConfig(c);
    expect(out).not.toContain('pw_very_secret_key');
    expect(out).not.toContain('hunter2');
    expect(out).toContain('# api-key = "***"  # flag, redacted');
    expect(out).toContain(
      '# url = "redis://admin:***@redis.internal:6379/0"  # env PUSHWIRE_REDIS, redacted',
    );
    expect(out).toContain('max-json-depth = 9  # file');
    expect(out).toContain('port = 8787  # default');
    // Usable as a configuration file: it parses and passes the checks.
    const again = parseConfigText(out, 'printed');
    expect(again.get('limits.max-json-depth')).toBe(9);
    expect(again.get('apns.key')).toBe('/etc/pushwire/AuthKey.p8');
    expect(again.has('api-key') || again.has('redis.url')).toBe(false); // redacted lines are comments
    expect(parseToml(out)).toMatchObject({ tls: {}, webpush: { enabled: true } });
  });
});
