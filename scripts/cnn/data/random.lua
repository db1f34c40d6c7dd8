-- A small seeded generator for data order (shuffles, splits), kept apart from the runtime's
-- generator: shuffling batches must not move the stream that initialisation, dropout and
-- augmentation draw from, and the order of epoch e must be computable on its own (so that a resumed
-- run sees the same batches as an uninterrupted one).
--
-- SplitMix64 (Steele, Lea and Flood, 2014) in Lua 5.4 integers, whose arithmetic wraps modulo 2^64
-- and whose >> is a logical shift: exactly the operations the algorithm is defined with.
local random = {}

local GOLDEN = 0x9E3779B97F4A7C15

local function mix(z)
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end
-- SplitMix64's increment and finalizer, for seeds derived elsewhere in the library.
random.GOLDEN, random.mix = GOLDEN, mix

-- A generator function returning integers uniform in 1..n, from a seed and an optional stream
-- number (the epoch): different streams of one seed are unrelated sequences.
function random.generator(seed, stream)
  local state = mix(math.tointeger(seed) * GOLDEN + mix((math.tointeger(stream) or 0) + 1))
  return function(n)
    state = state + GOLDEN
    -- the top 53 bits, scaled: the bias of a modulo would be visible for n near 2^63 only,
    -- but scaling costs nothing and has none worth mentioning for any n
    local r = (mix(state) >> 11) / 9007199254740992.0 -- [0, 1)
    return math.floor(r * n) + 1
  end
end

-- The numbers 1..n in a random order (Fisher-Yates) determined by seed and stream.
function random.permutation(n, seed, stream)
  local draw = random.generator(seed, stream)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    local j = draw(i)
    p[i], p[j] = p[j], p[i]
  end
  return p
end

-- Checks a seed argument: an integer (floats with an integral value are accepted).
function random.check_seed(seed, who)
  local s = math.tointeger(seed)
  if s == nil then
    error(string.format("%s: seed must be an integer (got %s)", who, tostring(seed)), 3)
  end
  return s
end

return random
