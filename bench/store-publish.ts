/**
 * Publish rate of the stores in-process: SqliteStore against PostgresStore (a private PostgreSQL
 * started on a free port, defaults: fsync and synchronous_commit on), 200-byte payloads,
 * server-generated ids. Prints one line per case.
 *
 *   npx tsx bench/store-publish.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore, SqliteStore, type Store } from '@pushwire/server';
import { startPostgres } from '../test/helpers/postgres.js';

async function run(name: string, store: Store, streams: number, total: number, inFlight: number) {
  const t0 = performance.now();
  let next = 0;
  const now = Date.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        const i = next++;
        const id = `${name}-${streams}-${inFlight}-${i}`;
        await store.publish({
          id,
          fresh: true,
          entries: [
            {
              id,
              stream: `d:dev${i % streams}`,
              ts: now,
              exp: now + 3_600_000,
              data: { i, pad: 'x'.repeat(200) },
            },
          ],
        });
      }
    }),
  );
  const rate = Math.round(total / ((performance.now() - t0) / 1000));
  console.log(
    `${name.padEnd(8)} ${String(inFlight).padStart(3)} in flight, ${String(streams).padStart(5)} streams: ${rate}/s`,
  );
}

const pg = await startPostgres();
const dir = mkdtempSync(join(tmpdir(), 'pushwire-bench-'));
const sqlite = SqliteStore.open({ path: join(dir, 'pushwire.db') });
await sqlite.ready();
const postgres = await PostgresStore.connect({ url: await pg.freshDatabase() });
try {
  for (const [streams, inFlight] of [
    [1000, 64],
    [1, 64],
    [1000, 1],
  ] as const) {
    const total = inFlight === 1 ? 500 : 4000;
    await run('sqlite', sqlite, streams, total, inFlight);
    await run('postgres', postgres, streams, total, inFlight);
  }
} finally {
  await Promise.all([sqlite.close(), postgres.close()]);
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
