import type { ScriptDef } from './redis-lua.js';

/**
 * The Lua scripts that append entries (see redis-lua.ts for how scripts are run): `append`, one
 * stream's part of a publish (Redis Cluster, where a publish spans slots), and `publish`, a whole
 * publish in one call (one Redis server, where a script may touch any key). Both share the Lua
 * functions below, so a publish appends the same way on either path.
 */

/** Lua: payload bytes (data and notification fields) of a stream entry's field list. */
export const SIZE_OF = `
local function sizeOf(f)
  local n = 0
  for i = 1, #f, 2 do
    if f[i] == 'd' or f[i] == 'n' then n = n + #f[i + 1] end
  end
  return n
end`;

/**
 * Lua: the backlog bound of a device stream. nil when an entry of `add` payload bytes fits, else
 * {-1, pending entries} or {-2, pending bytes}. Writes nothing.
 */
const BACKLOG = `
local function backlogFull(meta, entries, cursors, field, maxN, maxB, add)
  local head = tonumber(redis.call('HGET', meta, 'h') or '0')
  if head == 0 then return nil end
  -- Backlog: head minus the higher of the acked cursor and the seq before the oldest stored entry,
  -- at most the entries stored.
  local base = tonumber(redis.call('HGET', cursors, field) or '0')
  if base < head then
    local first = redis.call('XRANGE', entries, '-', '+', 'COUNT', 1)
    local stored = head
    if #first > 0 then stored = tonumber(string.match(first[1][1], '^(%d+)')) - 1 end
    base = math.max(base, math.min(stored, head))
  end
  -- Both are upper bounds: head − base counts the holes collapse left, XLEN acked entries not swept yet.
  local pending = math.min(head - base, redis.call('XLEN', entries))
  if maxN > 0 and pending >= maxN then return {-1, pending} end
  local bytes = tonumber(redis.call('HGET', meta, 'b') or '0') + add
  if maxB > 0 and pending > 0 and bytes > maxB then return {-2, bytes} end
  return nil
end`;

/**
 * Lua: appends one entry (after the checks), collapsing the older entry with its collapse key,
 * and sets the publish id's marker. Fields are args[from..to]. Returns seq, registration
 * generation, fresh (1 when the stream just entered the sweep registry).
 */
const APPEND_ENTRY = `
local function appendEntry(meta, entries, collapse, expiry, marker, retention, exp, ts, ck, add, args, from, to)
  local seq = tonumber(redis.call('HGET', meta, 'h') or '0') + 1
  redis.call('XADD', entries, seq .. '-0', 'p', seq - 1, 'x', exp, 't', ts, unpack(args, from, to))
  redis.call('HSET', meta, 'h', seq)
  if add ~= '0' then redis.call('HINCRBY', meta, 'b', add) end
  redis.call('ZADD', expiry, exp, seq)
  if ck ~= '' then
    local old = redis.call('HGET', collapse, ck)
    if old then
      local e = redis.call('XRANGE', entries, old .. '-0', old .. '-0')
      local size = #e > 0 and sizeOf(e[1][2]) or 0
      if size > 0 then redis.call('HINCRBY', meta, 'b', 0 - size) end
      if redis.call('XDEL', entries, old .. '-0') > 0 then redis.call('HINCRBY', meta, 'c', 1) end
      redis.call('ZREM', expiry, old)
    end
    redis.call('HSET', collapse, ck, seq)
  end
  redis.call('SET', marker, seq, 'PX', retention)
  local reg = redis.call('HGET', meta, 'r')
  if reg then return seq, tonumber(reg), 0 end
  reg = redis.call('HINCRBY', meta, 'g', 1)
  redis.call('HSET', meta, 'r', reg)
  return seq, reg, 1
end`;

/**
 * Appends one entry to one stream, once per publish id, collapsing older entries with its collapse key.
 * The meta hash keeps `b`, the payload bytes of the entries stored (for the backlog bound).
 * KEYS = meta, entries, collapse index, expiry index, marker, device cursors (a device stream's own;
 * any key of the slot otherwise).
 * ARGV = retention ms, exp, ts, collapse key ('' for none), own-stream cursor field ('' when not a
 * device stream), max pending entries (0: none), max pending bytes (0: none), this entry's payload
 * bytes, then field/value pairs of the entry.
 * Returns {seq, appended (1) or already there (0), registration generation (0: none), fresh (1 when
 * the stream just entered the sweep registry)}; or {-1, pending entries} / {-2, pending bytes} when
 * the device's backlog is full (nothing written).
 */
export const append: ScriptDef = {
  numberOfKeys: 6,
  lua: `${SIZE_OF}${BACKLOG}${APPEND_ENTRY}
local marker = redis.call('GET', KEYS[5])
if marker then
  return {tonumber(marker), 0, tonumber(redis.call('HGET', KEYS[1], 'r') or '0'), 0}
end
if ARGV[5] ~= '' then
  local full = backlogFull(KEYS[1], KEYS[2], KEYS[6], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
  if full then return full end
end
local seq, reg, fresh = appendEntry(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3],
  ARGV[4], ARGV[8], ARGV, 9, #ARGV)
return {seq, 1, reg, fresh}`,
};

/** Keys the `publish` script takes per stream, after the record's key. */
export const PUBLISH_KEYS_PER_STREAM = 8;

/**
 * A whole publish in one atomic call, on one Redis server (not Cluster: its keys span slots).
 * KEYS = publish record, then per stream: meta, entries, collapse index, expiry index, marker,
 * device cursors (any key when no backlog bound applies), topic followers (any key when no
 * expiry cap applies), sweep registry shard.
 * ARGV = retention ms, publish id, record ts, max pending entries (0: none), max pending bytes
 * (0: none), then per stream: stream, exp, capped exp for an unfollowed topic ('' when no cap
 * applies), ts, collapse key ('' for none), own-stream cursor field ('' when no backlog bound),
 * payload bytes, number of entry fields, the field/value pairs.
 * When the id has a record already, returns {1, record} and writes nothing. Otherwise checks every
 * backlog bound first, returning {-1, pending entries, stream index} / {-2, pending bytes, stream
 * index} with nothing written, then appends to each stream (a stream holding the id's marker from
 * an interrupted cross-slot publish keeps that entry), lists streams that became non-empty in the
 * sweep registry, stores the record done, and returns {0, then seq, appended (0/1), capped (0/1)
 * per stream}.
 */
export const publish: ScriptDef = {
  lua: `${SIZE_OF}${BACKLOG}${APPEND_ENTRY}
local prior = redis.call('GET', KEYS[1])
if prior then return {1, prior} end
local per = ${PUBLISH_KEYS_PER_STREAM}
local rows = {}
local a = 6
for i = 1, (#KEYS - 1) / per do
  local k = 2 + (i - 1) * per
  local r = {k = k, stream = ARGV[a], exp = ARGV[a + 1], capped = 0, ts = ARGV[a + 3], ck = ARGV[a + 4],
    own = ARGV[a + 5], add = ARGV[a + 6], from = a + 8, to = a + 7 + tonumber(ARGV[a + 7])}
  if ARGV[a + 2] ~= '' and redis.call('SCARD', KEYS[k + 6]) == 0 then
    r.exp = ARGV[a + 2]
    r.capped = 1
  end
  rows[i] = r
  a = r.to + 1
end
local maxN, maxB = tonumber(ARGV[4]), tonumber(ARGV[5])
for i, r in ipairs(rows) do
  if r.own ~= '' and redis.call('EXISTS', KEYS[r.k + 4]) == 0 then
    local full = backlogFull(KEYS[r.k], KEYS[r.k + 1], KEYS[r.k + 5], r.own, maxN, maxB, tonumber(r.add))
    if full then return {full[1], full[2], i} end
  end
end
local out = {0}
local listed = {}
local exp = ARGV[3]
for i, r in ipairs(rows) do
  local k = r.k
  local seq, reg, fresh
  local marker = redis.call('GET', KEYS[k + 4])
  if marker then
    seq, reg, fresh = tonumber(marker), tonumber(redis.call('HGET', KEYS[k], 'r') or '0'), 0
  else
    seq, reg, fresh = appendEntry(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[1], r.exp,
      r.ts, r.ck, r.add, ARGV, r.from, r.to)
  end
  -- As in the cross-slot path, a stream found with the marker is listed again (its writer may have died first).
  if fresh == 1 or (marker and reg > 0) then redis.call('ZADD', KEYS[k + 7], reg, r.stream) end
  out[#out + 1] = seq
  out[#out + 1] = marker and 0 or 1
  out[#out + 1] = r.capped
  if i == 1 or tonumber(r.exp) > tonumber(exp) then exp = r.exp end
  listed[i] = '{"stream":' .. cjson.encode(r.stream) .. ',"seq":' .. seq .. '}'
end
redis.call('SET', KEYS[1], '{"s":"d","id":' .. cjson.encode(ARGV[2]) .. ',"ts":' .. ARGV[3] .. ',"exp":' .. exp ..
  ',"entries":[' .. table.concat(listed, ',') .. ']}', 'PX', ARGV[1])
return out`,
};
