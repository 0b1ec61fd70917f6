import type { Store } from '@pushwire/server';

/**
 * Fault injection: the SQLite store's writer thread goes away, as on an uncaught error inside it.
 * Reaches into the store's private parts on purpose (store → write pipeline → thread → worker);
 * fails loudly when that path moves, rather than testing nothing.
 */
export async function killSqliteWriter(store: Store): Promise<void> {
  const worker = (store as unknown as { writes?: { thread?: { worker?: { terminate(): Promise<number> } } } })
    .writes?.thread?.worker;
  if (!worker) throw new Error('killSqliteWriter: the store has no writer thread where expected');
  await worker.terminate();
}
