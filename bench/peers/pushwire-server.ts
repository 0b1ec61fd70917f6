/**
 * Pushwire under test: createPushwireServer on the embedded SQLite store in a temp data dir, the
 * same as `pushwire serve` does, in its own process. Settings come as JSON in PUSHWIRE_BENCH:
 * `{ dataDir, port, apiKey, options }` (options are ServerOptions such as admissionRate).
 */
import { join } from 'node:path';
import { createPushwireServer, type ServerOptions, SqliteStore } from '@pushwire/server';

const cfg = JSON.parse(process.env.PUSHWIRE_BENCH ?? '{}') as {
  dataDir: string;
  port: number;
  apiKey: string;
  options?: Partial<ServerOptions>;
};
const store = SqliteStore.open({ path: join(cfg.dataDir, 'pushwire.db') });
const server = createPushwireServer({ ...cfg.options, store, apiKeys: [cfg.apiKey] });
const url = await server.listen({ host: '127.0.0.1', port: cfg.port });
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
