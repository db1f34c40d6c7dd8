-- layer_scaling.lua - inference time of each top-level layer of a benchmark network on 1 thread and
-- on 2, and how well each scales: where a network stops gaining from the second core.
--
--   cnnlua bench/layer_scaling.lua [resnet18|vgg|lenet|fashion] [repetitions]
local cnn = rawget(_G, "cnn") or require "cnn"

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local models = dofile(here .. "/models.lua")
local name, reps = arg[1] or "resnet18", math.tointeger(tonumber(arg[2] or "50")) or 50
local spec = assert(models[name], "unknown model " .. name)()
local model = spec.model
local c, h, w = table.unpack(spec.input)
cnn.manual_seed(1)
local input = cnn.randn(spec.batch, c, h, w)
model:build {c, h, w}
model:eval()

local registry = rawget(model, "_modules")
local layers = {}
for _, key in ipairs(registry.names) do layers[#layers + 1] = registry.values[key] end

-- Seconds per forward of each layer, summed over reps after 10 warm-up passes.
local function layer_times(threads)
  cnn.set_num_threads(threads)
  local times = {}
  cnn.no_grad(function()
    for rep = 1, reps + 10 do
      local x = input
      for i, layer in ipairs(layers) do
        local timer = cnn.timer()
        x = layer(x)
        if rep > 10 then times[i] = (times[i] or 0) + timer:elapsed() end
      end
    end
  end)
  return times
end

local one, two = layer_times(1), layer_times(2)
local total_one, total_two = 0, 0
print(string.format("%s, batch %d, ms per forward over %d repetitions", name, spec.batch, reps))
for i, layer in ipairs(layers) do
  total_one, total_two = total_one + one[i], total_two + two[i]
  print(string.format("%3d %-20s 1 thread %8.3f   2 threads %8.3f   scaling %.2f", i, layer.__name or "?",
                      one[i] / reps * 1000, two[i] / reps * 1000, one[i] / two[i]))
end
print(string.format("    %-20s 1 thread %8.3f   2 threads %8.3f   scaling %.2f", "total", total_one / reps * 1000,
                    total_two / reps * 1000, total_one / total_two))
