import { ConfigError } from './errors.js';

const CONNECT_PATH = '/v1/connect';

/** The two addresses derived from the `url` option. */
export interface Endpoints {
  /** WebSocket URL: `ws(s)://host:port[/prefix]/v1/connect`. */
  ws: string;
  /** HTTP base for the REST API (registration): `http(s)://host:port[/prefix]`. */
  http: string;
}

/**
 * The endpoints of each server of the `url` option (one URL or a list, tried in turn on failure).
 * @example servers(['https://a.example.com', 'https://b.example.com']).length // 2
 */
export function servers(url: string | readonly string[]): Endpoints[] {
  if (typeof url === 'string') return [endpoints(url)];
  if (!Array.isArray(url) || url.length === 0) {
    throw new ConfigError('url must be a URL or a list of URLs');
  }
  return url.map((u) => endpoints(u));
}

/**
 * Derives the WebSocket and HTTP addresses from the server's base URL, given as `http(s)://`,
 * `ws(s)://`, with or without a path prefix (a reverse proxy's), with or without `/v1/connect`.
 * @example endpoints('https://push.example.com') // { ws: 'wss://push.example.com/v1/connect', http: 'https://push.example.com' }
 */
export function endpoints(url: string): Endpoints {
  if (typeof url !== 'string') throw new ConfigError(`invalid url ${JSON.stringify(url)}`);
  // A small parser rather than `URL`: React Native's `URL` throws on `protocol`/`host`, and
  // Hermes or a bare engine may have none.
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#\s@]*@)?([^/?#\s]+)([^?#\s]*)/i.exec(url.trim());
  if (m === null) throw new ConfigError(`invalid url ${JSON.stringify(url)}`);
  const scheme = (m[1] as string).toLowerCase();
  const secure = scheme === 'https' || scheme === 'wss';
  if (!secure && scheme !== 'http' && scheme !== 'ws') {
    throw new ConfigError(`url must be http(s):// or ws(s)://, got ${scheme}:`);
  }
  const host = authority(m[3] as string, secure, url);
  let path = (m[4] as string).replace(/\/+$/, '');
  if (path.endsWith(CONNECT_PATH)) path = path.slice(0, -CONNECT_PATH.length);
  return {
    ws: `${secure ? 'wss' : 'ws'}://${host}${path}${CONNECT_PATH}`,
    http: `${secure ? 'https' : 'http'}://${host}${path}`,
  };
}

/** `host[:port]`, lowercased, without the scheme's default port; throws on a bad port. */
function authority(hostPort: string, secure: boolean, url: string): string {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d*))?$/i.exec(hostPort);
  if (m === null) throw new ConfigError(`invalid url ${JSON.stringify(url)}`);
  const host = (m[1] as string).toLowerCase();
  const port = m[2] === undefined || m[2] === '' ? undefined : Number(m[2]);
  if (port !== undefined && port > 65535) throw new ConfigError(`invalid port in ${JSON.stringify(url)}`);
  return port === undefined || port === (secure ? 443 : 80) ? host : `${host}:${port}`;
}
