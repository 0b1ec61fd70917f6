import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createPushwireServer, SqliteStore } from '@pushwire/server';
import { destination, pino } from 'pino';

interface ServeFlags {
  host: string;
  port: number;
  data: string;
  apiKey?: string;
  maxPayload: number;
  drainWindow: number;
  admissionRate: number;
  admissionBurst: number;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  publicUrl?: string;
}

/** Reads --tls-cert and --tls-key: both or neither. */
function tlsOf(f: ServeFlags): { cert: Buffer; key: Buffer } | undefined {
  if (!f.tlsCert && !f.tlsKey) return undefined;
  if (!f.tlsCert || !f.tlsKey) throw new Error('--tls-cert and --tls-key go together');
  return { cert: readFileSync(f.tlsCert), key: readFileSync(f.tlsKey) };
}

/** Reads the data dir's API key, or creates one on first start. */
function apiKeyFor(dataDir: string): { key: string; created: boolean } {
  const file = join(dataDir, 'api-key');
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), created: false };
  const key = `pw_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, created: true };
}

/** `pushwire serve`: one node on the embedded SQLite store; drains on SIGTERM/SIGINT. */
export async function serveCommand(f: ServeFlags): Promise<void> {
  const dataDir = resolve(f.data);
  mkdirSync(dataDir, { recursive: true });
  const { key, created } = f.apiKey ? { key: f.apiKey, created: false } : apiKeyFor(dataDir);
  const logger = pino({ level: f.logLevel, base: { pid: process.pid } }, destination(2));
  const tls = tlsOf(f);
  const store = SqliteStore.open({ path: join(dataDir, 'pushwire.db') });
  const server = createPushwireServer({
    store,
    apiKeys: [key],
    maxPayload: f.maxPayload,
    drainWindowMs: f.drainWindow,
    admissionRate: f.admissionRate,
    admissionBurst: f.admissionBurst,
    logger,
    ...(tls && { tls }),
    ...(f.publicUrl && { webPush: { publicUrl: f.publicUrl } }),
  });
  const url = await server.listen({ host: f.host, port: f.port });
  const keyNote = f.apiKey
    ? '(from --api-key / PUSHWIRE_API_KEY)'
    : created
      ? `(new, saved in ${join(dataDir, 'api-key')})`
      : `(from ${join(dataDir, 'api-key')})`;
  process.stdout.write(
    [
      `Pushwire listening on ${url}  (WebSocket ${url.replace(/^http/, 'ws')}/v1/connect)`,
      `Data dir: ${dataDir}`,
      `API key:  ${key}  ${keyNote}`,
      `Demo:     ${url}/demo#key=${key}   Dashboard: ${url}/dashboard#key=${key}   API docs: ${url}/docs`,
      '',
      'See a push arrive — in a second terminal:',
      `  npx pushwire listen --server ${url} --api-key ${key} --state ./device.json --user demo`,
      'and in a third:',
      `  npx pushwire publish --server ${url} --api-key ${key} --user demo --title "Hello" --body "from Pushwire"`,
      '',
    ].join('\n'),
  );
  logger.info({ url, dataDir }, 'listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, windowMs: f.drainWindow }, 'draining');
    server.drain().then(
      () => {
        logger.info('drained, bye');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
