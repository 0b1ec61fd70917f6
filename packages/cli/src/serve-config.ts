import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parse as parseToml, TomlError } from 'smol-toml';
import { BY_KEY, envOf, SECTIONS, SETTINGS, type Setting } from './serve-settings.js';

/**
 * The configuration of `pushwire serve` from its four sources: flag > environment (`PUSHWIRE_*`) >
 * configuration file (TOML, parsed by smol-toml) > default. Pure except {@link readConfigFile}.
 */

export type Value = string | number | boolean;
export type Source = 'flag' | 'env' | 'file' | 'default';

/** A configuration that cannot be used; the message names the flag, variable or file key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
}

/** Largest configuration file read: an operator's file is a few KB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface ResolvedConfig {
  /** Value of each setting by name (absent: unset). */
  values: Record<string, Value | undefined>;
  /** Where each set value came from. */
  sources: Record<string, Source>;
  /** The configuration file read, if any. */
  file?: string;
}

const describeType = (s: Setting): string => {
  const min = s.min !== undefined ? ` ≥ ${s.min}` : '';
  switch (s.type) {
    case 'integer':
      return `an integer${min}`;
    case 'number':
      return `a number${min}`;
    case 'boolean':
      return 'true or false';
    default:
      return s.choices ? `one of ${s.choices.join(', ')}` : 'a string';
  }
};

const kindOf = (v: unknown): string =>
  Array.isArray(v)
    ? 'an array'
    : v instanceof Date
      ? 'a date'
      : v !== null && typeof v === 'object'
        ? 'a table'
        : typeof v === 'string'
          ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
          : `${typeof v} ${String(v)}`;

/** Checks a typed value (from the file, or parsed from text) against the setting. */
function check(s: Setting, v: unknown, where: string): Value {
  const bad = () => new ConfigError(`${where} must be ${describeType(s)}, not ${kindOf(v)}`);
  switch (s.type) {
    case 'integer':
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || (s.type === 'integer' && !Number.isSafeInteger(v)))
        throw bad();
      if (s.min !== undefined && v < s.min) throw bad();
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw bad();
      return v;
    default:
      if (typeof v !== 'string' || (s.choices && !s.choices.includes(v))) throw bad();
      return v;
  }
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** Parses the text of a flag or environment variable. */
function fromText(s: Setting, text: string, where: string): Value {
  switch (s.type) {
    case 'integer':
    case 'number': {
      const n = /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
      return check(s, Number.isNaN(n) ? text : n, where);
    }
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (TRUE.has(t)) return true;
      if (FALSE.has(t)) return false;
      throw new ConfigError(
        `${where} must be true or false (1/0, yes/no, on/off), not ${JSON.stringify(text)}`,
      );
    }
    default:
      return check(s, text, where);
  }
}

/** Where a setting found outside its place belongs, for the error message. */
function homeOf(key: string): string {
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  const homes = SETTINGS.filter((s) => s.key === leaf || s.key.endsWith(`.${leaf}`)).map((s) => s.key);
  return homes.length > 0 ? ` (did you mean ${homes.map((h) => `"${h}"`).join(' or ')}?)` : '';
}

const isTable = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

/**
 * Parses and checks a configuration file's text: every key known and in its place, every value of
 * its type. Returns the values by file key.
 */
export function parseConfigText(text: string, name: string): Map<string, Value> {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    if (!(err instanceof TomlError)) throw new ConfigError(`config ${name}: not valid TOML: ${String(err)}`);
    const detail = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    throw new ConfigError(`config ${name}:${err.line}:${err.column}: not valid TOML: ${detail}`);
  }
  const values = new Map<string, Value>();
  const where = (key: string) => `config ${name}: "${key}"`;
  for (const [key, v] of Object.entries(doc)) {
    const setting = BY_KEY.get(key);
    if (setting) {
      values.set(key, check(setting, v, where(key)));
      continue;
    }
    const section = SECTIONS.get(key);
    if (!section) throw new ConfigError(`config ${name}: unknown key "${key}"${homeOf(key)}`);
    if (!isTable(v)) {
      throw new ConfigError(
        `config ${name}: "${key}" must be a table ([${key}]) of ${section.join(', ')}, not ${kindOf(v)}`,
      );
    }
    for (const [sub, sv] of Object.entries(v)) {
      const full = `${key}.${sub}`;
      const s = BY_KEY.get(full);
      if (!s) throw new ConfigError(`config ${name}: unknown key "${full}"${homeOf(full)}`);
      values.set(full, check(s, sv, where(full)));
    }
  }
  return values;
}

/** Reads a configuration file: a regular file of at most {@link MAX_CONFIG_BYTES}, in UTF-8 TOML. */
export function readConfigFile(path: string): Map<string, Value> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ConfigError(`config ${path}: cannot open: ${(err as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`config ${path}: not a regular file`);
    if (stat.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        `config ${path}: ${stat.size} bytes; a configuration file is at most ${MAX_CONFIG_BYTES} bytes`,
      );
    }
    const buf = Buffer.alloc(stat.size);
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, read);
      if (n === 0) break;
      read += n;
    }
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
    let decoded: string;
    try {
      decoded = text.decode(buf.subarray(0, read));
    } catch {
      throw new ConfigError(`config ${path}: not UTF-8 text`);
    }
    return parseConfigText(decoded, path);
  } finally {
    closeSync(fd);
  }
}

export interface ConfigSources {
  /** Values given on the command line, by setting name: text, or true for a switch (false for `--no-…`). */
  flags: Record<string, string | boolean>;
  /** The environment (`PUSHWIRE_*`); empty values count as unset. */
  env: Record<string, string | undefined>;
  /** The configuration file's values by key, and its name. */
  file?: { name: string; values: Map<string, Value> };
}

/** Resolves every setting: flag > environment > file > default. */
export function resolveConfig(src: ConfigSources): ResolvedConfig {
  const values: Record<string, Value | undefined> = {};
  const sources: Record<string, Source> = {};
  for (const s of SETTINGS) {
    const flag = src.flags[s.name];
    const envName = envOf(s);
    const env = src.env[envName];
    const fromFile = src.file?.values.get(s.key);
    let value: Value | undefined;
    let source: Source | undefined;
    if (flag !== undefined) {
      [value, source] = [typeof flag === 'boolean' ? flag : fromText(s, flag, s.flag), 'flag'];
    } else if (env !== undefined && env !== '') {
      [value, source] = [fromText(s, env, envName), 'env'];
    } else if (fromFile !== undefined) {
      [value, source] = [fromFile, 'file'];
    } else if (s.default !== undefined) {
      [value, source] = [s.default, 'default'];
    }
    if (value !== undefined && source !== undefined) {
      values[s.name] = value;
      sources[s.name] = source;
    }
  }
  checkRelations(values, sources);
  return { values, sources, ...(src.file && { file: src.file.name }) };
}

/**
 * Settings that bound one another: `[smaller, larger]` by name. Only two values the operator set
 * can contradict each other: a default beyond a bound set is capped by the server (a `ttl.max` of
 * a week caps the 30-day default TTL), as a client's value is.
 */
const ORDERED: [string, string][] = [
  ['minHeartbeat', 'maxHeartbeat'],
  ['minHeartbeat', 'defaultHeartbeat'],
  ['defaultHeartbeat', 'maxHeartbeat'],
  ['defaultTtl', 'maxTtl'],
];

function checkRelations(values: Record<string, Value | undefined>, sources: Record<string, Source>): void {
  const label = (name: string) => {
    const s = SETTINGS.find((x) => x.name === name)!;
    return `${s.key} (${s.flag}, ${sources[name]})`;
  };
  for (const [small, large] of ORDERED) {
    const [a, b] = [values[small], values[large]];
    const bothSet = sources[small] !== 'default' && sources[large] !== 'default';
    if (bothSet && typeof a === 'number' && typeof b === 'number' && a > b)
      throw new ConfigError(`${label(small)} = ${a} is more than ${label(large)} = ${b}`);
  }
}

/** A URL without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

function shown(s: Setting, v: Value): Value {
  if (s.secret === 'value') return '***';
  if (s.secret === 'url' && typeof v === 'string') return redactUrl(v);
  return v;
}

const toml = (v: Value): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * The effective configuration as a TOML configuration file, each line with where its value came
 * from; secrets redacted (the API key hidden, URL passwords masked; key files are shown by path,
 * their contents never read here).
 */
export function formatConfig(c: ResolvedConfig): string {
  const lines = [
    '# Effective configuration of pushwire serve (flag > env > file > default)',
    ...(c.file ? [`# file: ${c.file}`] : []),
  ];
  // Top-level keys first: in TOML, a key after a [section] header belongs to that section.
  const sectionOf = (s: Setting) => (s.key.includes('.') ? s.key.slice(0, s.key.indexOf('.')) : '');
  const order = ['', ...SECTIONS.keys()];
  for (const section of order) {
    if (section !== '') lines.push('', `[${section}]`);
    for (const s of SETTINGS.filter((x) => sectionOf(x) === section)) {
      const leaf = section === '' ? s.key : s.key.slice(section.length + 1);
      const v = c.values[s.name];
      if (v === undefined) {
        lines.push(`# ${leaf} =${s.defaultText ? `  # default: ${s.defaultText}` : '  # unset'}`);
        continue;
      }
      const source = c.sources[s.name] === 'env' ? `env ${envOf(s)}` : c.sources[s.name];
      // A redacted line is commented out: the printout used as a file must not set the key to "***".
      const redacted = shown(s, v) !== v;
      lines.push(
        `${redacted ? '# ' : ''}${leaf} = ${toml(shown(s, v))}  # ${source}${redacted ? ', redacted' : ''}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
