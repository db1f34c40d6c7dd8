-- Finite-difference gradient checking for the specs.
--
-- gradcheck(fn, inputs, opts) compares the gradients autograd computes for every input that requires
-- grad against central differences. fn receives the inputs and returns a tensor; the scalar that is
-- differentiated is sum(fn(...) * W) with a fixed random W, so every output element matters and
-- errors cannot cancel out. Raises an error describing the worst mismatch; returns true otherwise.
local cnn = require "cnn"

local function flat(t) return t:contiguous():view(-1) end

local function check(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-2, opts.atol or 1e-2, opts.rtol or 1e-2
  for _, x in ipairs(inputs) do
    if cnn.is_tensor(x) and x.is_leaf and x:needs_grad() then x.grad = nil end
  end

  local out = fn(table.unpack(inputs))
  cnn.manual_seed(opts.seed or 7)
  local weights = cnn.randn(table.unpack(out:shape()))
  if out:dim() == 0 then weights = cnn.tensor(1.0) end
  local function objective()
    return cnn.no_grad(function() return (fn(table.unpack(inputs)) * weights):sum():item() end)
  end
  ;(out * weights):sum():backward()

  for k, x in ipairs(inputs) do
    if cnn.is_tensor(x) and x:needs_grad() then
      local analytic = x.grad and flat(x.grad):totable() or {}
      local values = flat(x) -- a view: writing it perturbs x
      local n = x:numel()
      for i = 1, n do
        local orig = values[i]
        cnn.no_grad(function() values[i] = orig + eps end)
        local plus = objective()
        cnn.no_grad(function() values[i] = orig - eps end)
        local minus = objective()
        cnn.no_grad(function() values[i] = orig end)
        local numeric = (plus - minus) / (2 * eps)
        local got = analytic[i] or 0
        if math.abs(got - numeric) > atol + rtol * math.abs(numeric) then
          error(string.format("gradcheck: input %d element %d: autograd %.6g, finite differences %.6g "
                              .. "(input shape %s)", k, i, got, numeric,
                              table.concat(x:shape(), "x")), 2)
        end
      end
    end
  end
  return true
end

return check
