"""The limiter's Redis script: per-bucket counts over a rolling minute, checked and counted
atomically, on Redis's clock (docs/rate-limits.md explains the algorithm and its bounds).

One hash per subject (KEYS[1], the only key the script touches, so it is Redis Cluster safe):
- numeric fields: bucket index (Redis time in ms // bucket_ms) -> requests counted in it;
- `n`: the sum of the bucket fields still in the window; `o`: the oldest bucket that may be
  non-empty; `x`: Redis time (ms) until which the current refusal episode lasts, so that
  `ratelimit.exceeded` is reported once per episode, not once per refused request.
A request at bucket `cur` counts buckets `cur - n .. cur` (the window plus the current bucket),
so no real 60-second interval can ever hold more than `limit` served requests.

ARGV: limit, window_ms, bucket_ms, now_ms ("" in production: Redis `TIME` is the clock).
Returns {allowed (1/0), remaining, retry_after_ms, reset_ms, first_refusal (1/0)}.
"""

LUA = """
pcall(redis.replicate_commands)  -- effects replication on Redis < 5 (the TIME call)
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local bucket = tonumber(ARGV[3])
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local span = window / bucket
local cur = math.floor(now / bucket)
local first = cur - span
local state = redis.call('HMGET', key, 'n', 'o', 'x')
local total = tonumber(state[1]) or 0
local oldest = tonumber(state[2]) or cur
local old_total, old_oldest = total, oldest
local episode_end = tonumber(state[3]) or 0
if total <= 0 then
  total = 0
  oldest = cur
elseif oldest < first then
  -- Drop buckets that left the window: step through them, or scan the fields when the
  -- hash holds fewer fields than there are steps (after a quiet spell).
  if first - oldest > redis.call('HLEN', key) then
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      local index = tonumber(flat[i])
      if index and index < first then
        total = total - tonumber(flat[i + 1])
        redis.call('HDEL', key, flat[i])
      end
    end
  else
    for index = oldest, first - 1 do
      local count = redis.call('HGET', key, index)
      if count then
        total = total - tonumber(count)
        redis.call('HDEL', key, index)
      end
    end
  end
  oldest = first
  if total <= 0 then
    total = 0
    oldest = cur
  end
end
local ttl = window + 2 * bucket
if total + 1 > limit then
  -- The oldest buckets must leave the window until one more request fits.
  local need = total + 1 - limit
  local freed = 0
  local frees_at = cur
  for index = oldest, cur do
    local count = redis.call('HGET', key, index)
    if count then
      freed = freed + tonumber(count)
      if freed >= need then
        frees_at = index
        break
      end
    end
  end
  local retry = (frees_at + span + 1) * bucket - now
  local first_refusal = 0
  if episode_end <= now then
    first_refusal = 1
    episode_end = now + retry
  end
  redis.call('HSET', key, 'n', total, 'o', oldest, 'x', episode_end)
  redis.call('PEXPIRE', key, ttl)
  return {0, 0, retry, retry, first_refusal}
end
-- Served: count it. The key outlives its newest bucket by the window, so its expiry only
-- moves when a bucket is created.
if redis.call('HINCRBY', key, cur, 1) == 1 then
  redis.call('HSET', key, 'n', total + 1, 'o', oldest)
  redis.call('PEXPIRE', key, ttl)
elseif oldest ~= old_oldest or total ~= old_total then
  redis.call('HSET', key, 'n', total + 1, 'o', oldest)
else
  redis.call('HINCRBY', key, 'n', 1)
end
total = total + 1
return {1, limit - total, 0, (oldest + span + 1) * bucket - now, 0}
"""
