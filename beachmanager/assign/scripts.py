"""The Redis Lua scripts of the assignment store: every decision is one atomic script.

Keys (``P`` is the prefix, default ``beach:{assign}:``; the ``{assign}`` hash tag keeps
every key in one cluster slot)::

    P members           set   instance ids that registered and may still own hosts
    P inst:<id>         hash  id, endpoint, capacity, load, state, heartbeat_ms, incarnation;
                              PEXPIREs after the membership TTL
    P hosts:<id>        set   host session ids owned by <id> (its load is SCARD)
    P owner             hash  host session id -> owning instance id
    P since             hash  host session id -> JSON {at, reason, from, epoch}
    P epoch             hash  host session id -> its ownership epoch: +1 on every change of
                              owner (fencing: actions of an older epoch are refused by the host)
    P ready             hash  host session id -> instance id whose transport to it is ready
    P log               stream  one entry per move (host, to, from, reason, at), MAXLEN ~ bounded

Time is the Redis server's (``TIME``), so instances with skewed clocks agree on who is
alive.  An instance is *live* while ``now - heartbeat_ms <= dead_after``; a *candidate*
when live, ``SERVING`` and owning fewer hosts than its capacity.  The choice among
candidates is rendezvous hashing with exactly the hash of :mod:`.rendezvous`: the largest
``sha1hex(id .. "\\0" .. host)`` (40 lowercase hex digits compare like the 160-bit number),
ties to the smaller id.  Because the capacity check and the move happen in the same
script, concurrent claims from any number of instances never overshoot a capacity, and a
host can never have two owners.

Every script starts with ``ARGV = prefix, dead_after_ms, log_max, ...``.
"""

from __future__ import annotations

PRELUDE = r"""
local P = ARGV[1]
local DEAD_AFTER = tonumber(ARGV[2])
local LOG_MAX = ARGV[3]
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function ikey(id) return P .. 'inst:' .. id end
local function hkey(id) return P .. 'hosts:' .. id end

local function is_live(id)
  local hb = redis.call('HGET', ikey(id), 'heartbeat_ms')
  return hb ~= false and NOW - tonumber(hb) <= DEAD_AFTER
end

local function has_room(id)
  local r = redis.call('HMGET', ikey(id), 'heartbeat_ms', 'state', 'capacity')
  if not r[1] or NOW - tonumber(r[1]) > DEAD_AFTER or r[2] ~= 'SERVING' then
    return false
  end
  return redis.call('SCARD', hkey(id)) < tonumber(r[3])
end

local function choose(host, exclude)
  local best, best_score = false, false
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'members')) do
    if id ~= exclude and has_room(id) then
      local s = redis.sha1hex(id .. '\0' .. host)
      if not best or s > best_score or (s == best_score and id < best) then
        best, best_score = id, s
      end
    end
  end
  return best
end

local function move(host, from, to, reason)
  if from then redis.call('SREM', hkey(from), host) end
  redis.call('HDEL', P .. 'ready', host)
  if to then
    local epoch = redis.call('HINCRBY', P .. 'epoch', host, 1)
    redis.call('SADD', hkey(to), host)
    redis.call('HSET', P .. 'owner', host, to)
    redis.call('HSET', P .. 'since', host,
      cjson.encode({at = NOW, reason = reason, from = from or '', epoch = epoch}))
  else
    redis.call('HDEL', P .. 'owner', host)
    redis.call('HDEL', P .. 'since', host)
  end
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', LOG_MAX, '*', 'host', host,
    'to', to or '', 'from', from or '', 'reason', reason, 'at', NOW)
end
"""

#: ARGV[4..]: id, endpoint, capacity, state, ttl_ms, incarnation, fresh (1: clear the record
#: first, as on start-up).  Returns {now_ms, load, existed (0/1), previous incarnation}.
HEARTBEAT = PRELUDE + r"""
local id, endpoint, capacity, state = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local ttl, incarnation, fresh = ARGV[8], ARGV[9], ARGV[10]
local k = ikey(id)
local previous = redis.call('HGET', k, 'incarnation') or ''
local existed = redis.call('EXISTS', k)
if fresh == '1' then redis.call('DEL', k) end
local load = redis.call('SCARD', hkey(id))
redis.call('HSET', k, 'id', id, 'endpoint', endpoint, 'capacity', capacity, 'state', state,
  'heartbeat_ms', NOW, 'load', load, 'incarnation', incarnation)
redis.call('PEXPIRE', k, ttl)
redis.call('SADD', P .. 'members', id)
return {NOW, load, existed, previous}
"""

#: ARGV[4..]: host, reason.  Sticky: a host with a live owner keeps it.  Returns
#: {status ('kept'|'assigned'|'full'), owner or '', previous owner or '', reason, now_ms}.
ASSIGN = PRELUDE + r"""
local host, reason = ARGV[4], ARGV[5]
local cur = redis.call('HGET', P .. 'owner', host)
if cur and is_live(cur) then return {'kept', cur, '', '', NOW} end
local to = choose(host, false)
if not to then return {'full', cur or '', '', '', NOW} end
if cur then reason = 'failover' end
move(host, cur or nil, to, reason)
return {'assigned', to, cur or '', reason, NOW}
"""

#: ARGV[4]: most moves to make.  Moves hosts of members that are not live; prunes members
#: whose record expired and who own nothing.  Returns {now_ms, {host, from, to}..., '|',
#: {host, owner}... (stranded)} flattened.
SWEEP = PRELUDE + r"""
local budget = tonumber(ARGV[4])
local out, stranded = {NOW}, {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'members')) do
  if not is_live(id) then
    local hosts = redis.call('SMEMBERS', hkey(id))
    if #hosts == 0 and redis.call('EXISTS', ikey(id)) == 0 then
      redis.call('SREM', P .. 'members', id)
    end
    for _, host in ipairs(hosts) do
      local to = false
      if budget > 0 then to = choose(host, id) end
      if to then
        move(host, id, to, 'failover')
        budget = budget - 1
        table.insert(out, host); table.insert(out, id); table.insert(out, to)
      else
        table.insert(stranded, host); table.insert(stranded, id)
      end
    end
  end
end
table.insert(out, '|')
for _, v in ipairs(stranded) do table.insert(out, v) end
return out
"""

#: ARGV[4]: the draining instance.  Hands each of its hosts to the next candidate in the
#: host's ranking.  Same reply shape as SWEEP (stranded: hosts nobody had room for).
HANDOVER = PRELUDE + r"""
local id = ARGV[4]
local out, stranded = {NOW}, {}
for _, host in ipairs(redis.call('SMEMBERS', hkey(id))) do
  local to = choose(host, id)
  if to then
    move(host, id, to, 'drain')
    table.insert(out, host); table.insert(out, id); table.insert(out, to)
  else
    table.insert(stranded, host); table.insert(stranded, id)
  end
end
table.insert(out, '|')
for _, v in ipairs(stranded) do table.insert(out, v) end
return out
"""

#: ARGV[4..]: id, most moves.  Gentle rebalancing after a member joins: each host of <id>
#: that ranks another candidate (live, SERVING, with room) above <id> moves to the best such
#: candidate.  A host only ever moves up its own ranking, so this converges and never cycles.
#: Same reply shape as SWEEP (nothing is stranded).
REBALANCE = PRELUDE + r"""
local id, budget = ARGV[4], tonumber(ARGV[5])
local out = {NOW}
for _, host in ipairs(redis.call('SMEMBERS', hkey(id))) do
  if budget <= 0 then break end
  local mine = redis.sha1hex(id .. '\0' .. host)
  local best, best_score = false, mine
  for _, other in ipairs(redis.call('SMEMBERS', P .. 'members')) do
    if other ~= id then
      local s = redis.sha1hex(other .. '\0' .. host)
      if (s > best_score or (s == best_score and best and other < best)) and has_room(other) then
        best, best_score = other, s
      end
    end
  end
  if best then
    move(host, id, best, 'rebalance')
    budget = budget - 1
    table.insert(out, host); table.insert(out, id); table.insert(out, best)
  end
end
table.insert(out, '|')
return out
"""

#: ARGV[4..]: host, expected owner ('' = whoever).  Returns {1, former owner, now_ms} or
#: {0, owner, now_ms}.
RELEASE = PRELUDE + r"""
local host, expected = ARGV[4], ARGV[5]
local cur = redis.call('HGET', P .. 'owner', host)
if not cur or (expected ~= '' and cur ~= expected) then return {0, cur or '', NOW} end
move(host, cur, nil, 'release')
return {1, cur, NOW}
"""

#: ARGV[4..]: host, claimant, expected owner, expected epoch, min interval ms.  Hot failover
#: on the host's word: the claimant (a standby the host told that the owner went silent)
#: takes the host only if the owner and epoch are still those the host named, the claimant
#: has room, and the owner has held it for at least the min interval (against flapping).
#: Returns {status ('taken'|'moved'|'stale'|'recent'|'full'), owner or '', epoch, now_ms}.
TAKEOVER = PRELUDE + r"""
local host, claimant, expected = ARGV[4], ARGV[5], ARGV[6]
local want_epoch, min_interval = tonumber(ARGV[7]), tonumber(ARGV[8])
local cur = redis.call('HGET', P .. 'owner', host)
local epoch = tonumber(redis.call('HGET', P .. 'epoch', host) or '0')
if not cur or cur ~= expected or cur == claimant then return {'moved', cur or '', epoch, NOW} end
if epoch ~= want_epoch then return {'stale', cur, epoch, NOW} end
local since = redis.call('HGET', P .. 'since', host)
if since and NOW - tonumber(cjson.decode(since).at) < min_interval then
  return {'recent', cur, epoch, NOW}
end
if not has_room(claimant) then return {'full', cur, epoch, NOW} end
move(host, cur, claimant, 'failover')
return {'taken', claimant, epoch + 1, NOW}
"""

#: ARGV[4..]: id, capacity, hosts...  Re-claims hosts that have no owner at all (the store
#: lost them) for the instance that still holds them.  Returns {now_ms, host...} adopted.
ADOPT = PRELUDE + r"""
local id, capacity = ARGV[4], tonumber(ARGV[5])
local out = {NOW}
for i = 6, #ARGV do
  local host = ARGV[i]
  if not redis.call('HGET', P .. 'owner', host)
      and redis.call('SCARD', hkey(id)) < capacity then
    move(host, nil, id, 'restore')
    table.insert(out, host)
  end
end
return out
"""

#: ARGV[4..]: host, instance, ready (1/0).  Marks the owner's transport ready (or not); a
#: mark from an instance that does not own the host is ignored.  Returns 1 when applied.
MARK_READY = PRELUDE + r"""
local host, id, ready = ARGV[4], ARGV[5], ARGV[6]
if redis.call('HGET', P .. 'owner', host) ~= id then return 0 end
if ready == '1' then redis.call('HSET', P .. 'ready', host, id)
else redis.call('HDEL', P .. 'ready', host) end
return 1
"""

#: ARGV[4]: id.  Returns {record exists (0/1), host...}: what the instance owns, and whether
#: the store still knows it (a missing record means Redis lost it or it expired).
HOLDINGS = PRELUDE + r"""
local id = ARGV[4]
local out = {redis.call('EXISTS', ikey(id))}
for _, host in ipairs(redis.call('SMEMBERS', hkey(id))) do table.insert(out, host) end
return out
"""

#: ARGV[4]: id.  Deletes the instance's record (its hosts, if any, become orphans at once).
LEAVE = PRELUDE + r"""
local id = ARGV[4]
redis.call('DEL', ikey(id))
local left = redis.call('SCARD', hkey(id))
if left == 0 then redis.call('SREM', P .. 'members', id) end
return left
"""

#: Returns {now_ms, then per member: id, endpoint, capacity, load (SCARD), state,
#: heartbeat_ms ('' when the record expired)}.
MEMBERS = PRELUDE + r"""
local out = {NOW}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'members')) do
  local r = redis.call('HMGET', ikey(id), 'endpoint', 'capacity', 'state', 'heartbeat_ms')
  table.insert(out, id); table.insert(out, r[1] or ''); table.insert(out, r[2] or '0')
  table.insert(out, redis.call('SCARD', hkey(id))); table.insert(out, r[3] or '')
  table.insert(out, r[4] or '')
end
return out
"""
