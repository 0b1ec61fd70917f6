import { topicStream } from '@pushwire/protocol';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis-client.js';
import type { RedisKeys } from './redis-keys.js';

/**
 * Lists every device's topics in the topics' follower sets, once per deployment: those sets (kept
 * by subscribe and unsubscribe) say whether anyone follows a topic, and a deployment that ran an
 * older Pushwire has subscriptions they do not list yet. Until this has run, no topic is treated
 * as unfollowed. Idempotent (SADD), so nodes starting together may all run it; a subscription
 * removed meanwhile may stay listed, which only keeps its topic's messages longer.
 * Resolves with whether the sets are complete.
 */
export async function listFollowers(redis: RedisClient, keys: RedisKeys): Promise<boolean> {
  if ((await redis.exists(keys.followersListed())) === 1) return true;
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', keys.topicsPattern(), 'COUNT', 1000);
      cursor = next;
      for (const key of found) {
        const device = keys.deviceOfTopicsKey(key);
        const topics = await redis.zrange(key, 0, -1);
        await Promise.all(topics.map((t) => redis.sadd(keys.stream(topicStream(t)).followers, device)));
      }
    } while (cursor !== '0');
  }
  await redis.set(keys.followersListed(), String(Date.now()));
  return true;
}
