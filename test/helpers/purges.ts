import type { WebPushRegistry } from '@pushwire/server';

/**
 * Records the cutoff of every finished purge of revoked Web Push subscriptions (the server's
 * sweep), so a test waits for "a sweep ran after the clock moved" instead of sleeping through a
 * few sweep intervals. Patches `registry` in place; pass it as `webPush.registry`.
 */
export function recordPurges(registry: WebPushRegistry): { readonly cutoffs: number[] } {
  const purge = registry.purgeRevoked?.bind(registry);
  if (!purge) throw new Error('this registry does not purge');
  const cutoffs: number[] = [];
  registry.purgeRevoked = async (before) => {
    const n = await purge(before);
    cutoffs.push(before);
    return n;
  };
  return { cutoffs };
}
