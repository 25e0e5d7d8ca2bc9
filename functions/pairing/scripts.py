"""The Redis scripts that move a pairing session: each is one atomic compare-and-set, so the listener, the
deadline sweeper and a polling request can race without a session ever moving backwards.
"""

# KEYS: none (single-instance Redis; keys are built from ARGV[1], the prefix)
# ARGV: base, sid, owner, serial, now_ms, ack_ms, expires_ms, keep_ms, max_active, max_starts, window_ms,
#       user_name, expires_iso
START_LUA = """
local base, sid, owner, serial = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, ack, expires, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local max_active, max_starts, window = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local starts = base .. 'starts:' .. owner
local active = base .. 'active:' .. owner
local lock = base .. 'serial:' .. serial
local deadlines = base .. 'deadlines'
redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - window)
if redis.call('ZCARD', starts) >= max_starts then
  local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
  return {'rate', tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
local count = redis.call('ZCARD', active)
local old = redis.call('GET', lock)
local supersede = false
if old then
  local okey = base .. 'session:' .. old
  local ostatus = redis.call('HGET', okey, 'status')
  if ostatus == 'start' or ostatus == 'waiting' or ostatus == 'confirming' then
    if redis.call('HGET', okey, 'owner') ~= owner or ostatus == 'confirming' then
      return {'busy', old}
    end
    supersede = true
    if redis.call('ZSCORE', active, old) then count = count - 1 end
  end
end
if count >= max_active then return {'too_many', tostring(count)} end
if supersede then
  local okey = base .. 'session:' .. old
  redis.call('HSET', okey, 'status', 'failed', 'reason', 'superseded', 'finished_ms', now)
  redis.call('ZREM', active, old)
  redis.call('ZREM', deadlines, old)
end
local key = base .. 'session:' .. sid
redis.call('HSET', key, 'session_id', sid, 'owner', owner, 'serial', serial, 'status', 'start',
  'created_ms', now, 'ack_ms', ack, 'expires_ms', expires, 'user_name', ARGV[12], 'expires_at', ARGV[13])
redis.call('PEXPIREAT', key, expires + keep)
redis.call('SET', lock, sid, 'PXAT', expires + 5000)
redis.call('ZADD', active, expires, sid)
redis.call('PEXPIREAT', active, expires + 5000)
redis.call('ZADD', starts, now, sid)
redis.call('PEXPIRE', starts, window)
redis.call('ZADD', deadlines, ack, sid)
if supersede then
  redis.call('PUBLISH', base .. 'wake', old)
  return {'ok', old}
end
return {'ok', ''}
"""

# Compare-and-set one session's status. ARGV: base, sid, expected, new, now_ms, deadline_ms ('' = none),
# then field/value pairs to set. Terminal statuses release the serial lock and the user's active slot.
CAS_LUA = """
local base, sid, expected, new, now, deadline = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = base .. 'session:' .. sid
local status = redis.call('HGET', key, 'status')
if not status then return {'missing', ''} end
if status ~= expected then return {'stale', status} end
redis.call('HSET', key, 'status', new)
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if new == 'done' or new == 'failed' or new == 'expired' then
  redis.call('HSET', key, 'finished_ms', now)
  redis.call('ZREM', base .. 'deadlines', sid)
  local owner = redis.call('HGET', key, 'owner')
  redis.call('ZREM', base .. 'active:' .. owner, sid)
  local lock = base .. 'serial:' .. redis.call('HGET', key, 'serial')
  if redis.call('GET', lock) == sid then redis.call('DEL', lock) end
elseif deadline ~= '' then
  redis.call('ZADD', base .. 'deadlines', deadline, sid)
end
redis.call('PUBLISH', base .. 'wake', sid)
return {'ok', status}
"""
