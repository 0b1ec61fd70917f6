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
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError(`invalid url ${JSON.stringify(url)}`, { cause });
  }
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  if (!secure && u.protocol !== 'http:' && u.protocol !== 'ws:') {
    throw new ConfigError(`url must be http(s):// or ws(s)://, got ${u.protocol}`);
  }
  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith(CONNECT_PATH)) path = path.slice(0, -CONNECT_PATH.length);
  return {
    ws: `${secure ? 'wss' : 'ws'}://${u.host}${path}${CONNECT_PATH}`,
    http: `${secure ? 'https' : 'http'}://${u.host}${path}`,
  };
}
