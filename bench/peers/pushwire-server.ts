/**
 * Pushwire under test: createPushwireServer in its own process, on the embedded SQLite store in a
 * temp data dir (as `pushwire serve` does), or with `redis` on a Redis store and bus (as
 * `pushwire serve --redis URL` does). Settings come as JSON in PUSHWIRE_BENCH:
 * `{ dataDir, port, apiKey, options, redis? }` (options are ServerOptions such as admissionRate).
 */
import { join } from 'node:path';
import {
  createPushwireServer,
  RedisBus,
  RedisStore,
  type ServerOptions,
  SqliteStore,
} from '@pushwire/server';
import { gcOnSignal } from './gc-signal.js';

const cfg = JSON.parse(process.env.PUSHWIRE_BENCH ?? '{}') as {
  dataDir: string;
  port: number;
  apiKey: string;
  options?: Partial<ServerOptions>;
  /** redis://host:port: store and bus on Redis instead of SQLite. */
  redis?: string;
};
const engine = cfg.redis
  ? {
      store: await RedisStore.connect({ url: cfg.redis }),
      bus: await RedisBus.connect({ url: cfg.redis, nodeId: 'bench0' }),
    }
  : { store: SqliteStore.open({ path: join(cfg.dataDir, 'pushwire.db') }) };
const server = createPushwireServer({ ...cfg.options, ...engine, apiKeys: [cfg.apiKey] });
const url = await server.listen({ host: '127.0.0.1', port: cfg.port });
gcOnSignal();
process.stdout.write(`listening on ${url}\n`);

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  const hard = setTimeout(() => process.exit(1), 5000);
  server.close().then(
    () => {
      clearTimeout(hard);
      process.exit(0);
    },
    () => process.exit(1),
  );
});
