package redisadapter

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/redis/rueidis"
)

// Keys of a room, for room R and prefix P (the braces are a hash tag: a
// room's keys would share a slot, though Redis Cluster is not supported):
//
//	P:{R}:m  hash: e = epoch, o = last offset
//	P:{R}:h  stream: the history, entry ID "<offset>-0", field d = body
//	P:{R}:p  hash: presence, field "<node>:<conn>" = payload
//	P:{R}    the Pub/Sub channel
//	P:node:<node>  a live node's heartbeat key (TTL: two heartbeats)
type roomKeys struct {
	meta, hist, pres, channel string
}

func (a *Adapter) keysOf(room string) roomKeys {
	base := a.cfg.Prefix + ":{" + room + "}"
	return roomKeys{meta: base + ":m", hist: base + ":h", pres: base + ":p", channel: base}
}

// newEpoch is the Lua that makes a room's state when it is missing: a new
// epoch (Redis's clock and the calling node's random seed), offset 0, no
// history. Expects the local e (nil), sets e and o.
const newEpoch = `
if not e then
  local t = redis.call('TIME')
  e = string.format('%x.%x.', tonumber(t[1]), tonumber(t[2])) .. ARGV[1]
  o = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
end
`

// publishScript numbers a batch of messages of one room, appends them to
// the history and publishes them, atomically: offsets have no holes and the
// channel carries them in order. The offset is stored before anything is
// published, so a script that fails halfway leaves a hole (a gap the
// subscribers recover or report), never an offset used twice.
//
//	KEYS: meta, hist. ARGV: seed, ttl ms, channel, max history, body, body, ...
//	Publishes each body as: offset (8 bytes, big endian), len(epoch) (1
//	byte), epoch, body.
//	Returns the offset of the first body.
var publishScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'e', 'o')
local e, o = v[1], tonumber(v[2])
` + newEpoch + `
local first = o + 1
redis.call('HSET', KEYS[1], 'o', o + #ARGV - 4)
local p = struct.pack('B', #e) .. e
for i = 5, #ARGV do
  o = o + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], string.format('%d-0', o), 'd', ARGV[i])
  redis.call('PUBLISH', ARGV[3], struct.pack('>I8', o) .. p .. ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return first
`)

// syncScript reads a room's position (making its state if missing) and,
// when the caller's epoch is current, the messages after the caller's
// offset.
//
//	KEYS: meta, hist. ARGV: seed, ttl ms, known epoch, after offset, count.
//	Returns {epoch, offset, entries} (entries: XRANGE's reply, maybe empty).
var syncScript = newScript(`
local v = redis.call('HMGET', KEYS[1], 'e', 'o')
local e, o = v[1], tonumber(v[2])
` + newEpoch + `
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local n = tonumber(ARGV[5])
local entries = {}
if e == ARGV[3] and n > 0 and o > tonumber(ARGV[4]) then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[4] .. '-0', '+', 'COUNT', n)
end
return {e, o, entries}
`)

// historyScript returns the room's epoch and its last messages at or
// before an offset ("+": the newest), newest first, if the epoch is the
// given one ("": any).
//
//	KEYS: meta, hist. ARGV: epoch, up to ID, count.
//	Returns {epoch or false, entries}.
var historyScript = newScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e or (ARGV[1] ~= '' and e ~= ARGV[1]) then return {false, {}} end
return {e, redis.call('XREVRANGE', KEYS[2], ARGV[2], '-', 'COUNT', ARGV[3])}
`)

// presenceScript returns a room's presence entries whose node is alive and
// deletes the others.
//
//	KEYS: presence. ARGV: node key prefix ("P:node:").
//	Returns field, payload, field, payload, ...
var presenceScript = newScript(`
local all = redis.call('HGETALL', KEYS[1])
local alive, out = {}, {}
for i = 1, #all, 2 do
  local f = all[i]
  local node = string.match(f, '^([^:]+):')
  local ok = node and alive[node]
  if node and ok == nil then
    ok = redis.call('EXISTS', ARGV[1] .. node) == 1
    alive[node] = ok
  end
  if ok then
    out[#out + 1] = f
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], f)
  end
end
return out
`)

// script is a Lua script run with EVALSHA, and EVAL when Redis does not
// have it (after a restart).
type script struct {
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// isNoScript tells whether err is Redis's NOSCRIPT.
func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// run runs s with keys and args.
func (s *script) run(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	res := c.Do(ctx, c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if isNoScript(res.Error()) {
		res = c.Do(ctx, c.B().Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return res
}

// validPrefix reports whether p is usable as a key prefix.
func validPrefix(p string) bool {
	return p != "" && !strings.ContainsAny(p, "{}: \r\n")
}
