/**
 * Lua scripts of the Redis store, registered with ioredis `defineCommand` (EVALSHA, falling back to
 * EVAL after a Redis restart emptied the script cache). Each script touches the keys of one hash
 * slot only (see redis-keys.ts), all of them passed in KEYS, so each is atomic in Redis Cluster too.
 * Scripts write nothing before the last check that can fail, since Redis does not roll a script back.
 */

import { append, publish, SIZE_OF } from './redis-lua-append.js';

export interface ScriptDef {
  /** Absent: the key count is passed as the first argument (a script over a variable number of keys). */
  numberOfKeys?: number;
  lua: string;
}

/**
 * Claims a publish id: KEYS = record; ARGV = pending value, retention ms.
 * Returns nil when claimed now, else the value already stored (pending or done).
 */
const claim: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`,
};

/** Shared loop of read and count: walks entries after ARGV[1] (an exclusive XRANGE start). */
const deliverableLoop = (onEntry: string, stop: string, batch: string) => `
local start = ARGV[1]
local now = tonumber(ARGV[2])
while true do
  ${stop}
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ${batch})
  if #entries == 0 then break end
  for _, e in ipairs(entries) do
    local f = e[2]
    local x, t
    for i = 1, #f, 2 do
      if f[i] == 'x' then x = tonumber(f[i + 1]) elseif f[i] == 't' then t = tonumber(f[i + 1]) end
    end
    if x > now and x > t then ${onEntry} end
  end
  start = '(' .. entries[#entries][1]
end`;

/**
 * Deliverable entries (exp > now and exp > ts) after a seq, oldest first.
 * KEYS = entries; ARGV = exclusive start id, now, limit. Returns XRANGE-shaped entries.
 */
const read: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local limit = tonumber(ARGV[3])
local out = {}
${deliverableLoop('if #out < limit then out[#out + 1] = e end', 'if #out >= limit then break end', 'limit - #out + 8')}
return out`,
};

/** Number of deliverable entries after a seq. KEYS = entries; ARGV = exclusive start id, now. */
const count: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local n = 0
${deliverableLoop('n = n + 1', '', '512')}
return n`,
};

/**
 * Sweeps one stream: expired entries, collapsed ones (counted), and for a device stream the entries
 * its device acknowledged. An emptied stream leaves the registry: its generation is cleared here
 * and returned, and the caller removes the registry member only if it still has that generation.
 * KEYS = meta, entries, collapse index, expiry index, device cursors (any key of the slot when
 * not a device stream); ARGV = now, own-stream cursor field ('' when none).
 * Returns {removed, emptied (0/1), generation (0: none)}.
 */
const sweep: ScriptDef = {
  numberOfKeys: 5,
  lua: `${SIZE_OF}
local removed = 0
local bytes = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
for _, seq in ipairs(due) do
  local e = redis.call('XRANGE', KEYS[2], seq .. '-0', seq .. '-0')
  if #e > 0 then bytes = bytes + sizeOf(e[1][2]) end
  removed = removed + redis.call('XDEL', KEYS[2], seq .. '-0')
end
if #due > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1]) end
local collapsed = redis.call('HGET', KEYS[1], 'c')
if collapsed then
  removed = removed + tonumber(collapsed)
  redis.call('HDEL', KEYS[1], 'c')
end
if ARGV[2] ~= '' then
  local acked = redis.call('HGET', KEYS[5], ARGV[2])
  if acked then
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', acked .. '-0')) do bytes = bytes + sizeOf(e[2]) end
    removed = removed + redis.call('XTRIM', KEYS[2], 'MINID', acked .. '-1')
  end
end
if redis.call('XLEN', KEYS[2]) > 0 then
  if bytes > 0 then redis.call('HINCRBY', KEYS[1], 'b', 0 - bytes) end
  return {removed, 0, 0}
end
redis.call('HDEL', KEYS[1], 'b')
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local reg = redis.call('HGET', KEYS[1], 'r')
if reg then redis.call('HDEL', KEYS[1], 'r') end
return {removed, 1, tonumber(reg or '0')}`,
};

/** Removes a registry member if its score is still ARGV[2]. KEYS = registry; ARGV = stream, gen. */
const unregister: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`,
};

/** KEYS = device; ARGV = field/value pairs. Returns 1 when created, 0 when the id exists. */
const createDevice: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`,
};

/**
 * Lists a device in its user's zset unless the user has ARGV[1] devices already (0: no bound).
 * KEYS = user; ARGV = max, createdAt (score), device id. Returns 1 when listed, 0 when refused.
 */
const listDevice: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if tonumber(ARGV[1]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1`,
};

/** KEYS = device; ARGV = lastSeen. Ignores unknown devices. */
const touch: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastSeen', ARGV[1])
return 1`,
};

/** Moves cursors forward only. KEYS = device, cursors; ARGV = stream/seq pairs. Ignores unknown devices. */
const ack: ScriptDef = {
  numberOfKeys: 2,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if not cur or tonumber(cur) < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return 1`,
};

/**
 * KEYS = device, topics, cursors; ARGV = topic, topic stream, its head, max topics (0: none).
 * Returns the cursor (kept when already subscribed, else the head), -1 for an unknown device, or
 * -2 when the device follows the max number of topics already.
 */
const subscribe: ScriptDef = {
  numberOfKeys: 3,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
end
if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -2 end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return tonumber(ARGV[3])`,
};

/** KEYS = topics, cursors; ARGV = topic, topic stream. */
const unsubscribe: ScriptDef = {
  numberOfKeys: 2,
  lua: `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1`,
};

/** KEYS = lock; ARGV = token. Deletes the lock only if this sweeper still holds it. */
const unlock: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
};

export const SCRIPTS = {
  pwClaim: claim,
  pwAppend: append,
  pwPublish: publish,
  pwRead: read,
  pwCount: count,
  pwSweep: sweep,
  pwUnregister: unregister,
  pwCreateDevice: createDevice,
  pwListDevice: listDevice,
  pwTouch: touch,
  pwAck: ack,
  pwSubscribe: subscribe,
  pwUnsubscribe: unsubscribe,
  pwUnlock: unlock,
} as const;

type Arg = string | number;

/** The scripts as methods of the client (ioredis adds them with `defineCommand`). */
export type ScriptCommands = {
  [K in keyof typeof SCRIPTS]: (...args: Arg[]) => Promise<unknown>;
};
