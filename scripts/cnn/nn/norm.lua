-- Batch normalisation layers: BatchNorm1d (N x C or N x C x L) and BatchNorm2d (N x C x H x W).
--
--   nn.BatchNorm2d(num_features, {eps=1e-5, momentum=0.1, affine=true, track_running_stats=true})
--   nn.BatchNorm2d{num_features=16, eps=...}    nn.BatchNorm2d()  (num_features from the first input)
--
-- Parameters: weight (ones) and bias (zeros) when affine. Buffers (saved in state_dict, never
-- trained): running_mean (zeros) and running_var (ones) when track_running_stats. In training mode
-- the batch statistics normalise and the running ones move towards them by momentum (PyTorch's
-- convention: running = (1 - momentum) running + momentum batch, unbiased variance); in evaluation
-- mode the running statistics normalise. Without track_running_stats the batch statistics are used
-- in both modes.
local cnn = require "cnn"
local Module = require "cnn.nn.module"

local args = Module.args
local M = {}

local options = {"eps", "momentum", "affine", "track_running_stats"}

local function batch_norm_class(name, min_dim, max_dim, layout)
  local cls = Module:extend(name)

  function cls:init(num_features, opts)
    if type(num_features) == "table" and opts == nil then
      local all = {"num_features", table.unpack(options)}
      opts = args.options(name, num_features, all)
      num_features = opts.num_features
    else
      opts = args.options(name, opts, options)
    end
    self.num_features = args.positive_int(name, "num_features", num_features)
    self.eps = args.number(name, "eps", opts.eps, 1e-5, 0)
    self.momentum = args.number(name, "momentum", opts.momentum, 0.1, 0, 1)
    self.affine = args.boolean(name, "affine", opts.affine, true)
    self.track_running_stats = args.boolean(name, "track_running_stats", opts.track_running_stats, true)
    if self.num_features then self:_create(self.num_features) else rawset(self, "_lazy", true) end
  end

  function cls:_create(c)
    self.num_features = c
    if self.affine then
      self:register_parameter("weight", cnn.ones(c))
      self:register_parameter("bias", cnn.zeros(c))
    end
    if self.track_running_stats then
      self:register_buffer("running_mean", cnn.zeros(c))
      self:register_buffer("running_var", cnn.ones(c))
    end
    rawset(self, "_lazy", nil)
  end

  function cls:_build_from_state(sd, prefix)
    local t = sd[prefix .. "weight"] or sd[prefix .. "running_mean"]
    if not cnn.is_tensor(t) or t:dim() ~= 1 then return false end
    self:_create(t:size(1))
    return true
  end

  function cls:_unbuild()
    for _, k in ipairs {"weight", "bias"} do self:register_parameter(k, nil) end
    for _, k in ipairs {"running_mean", "running_var"} do self:register_buffer(k, nil) end
    self.num_features = nil
    rawset(self, "_lazy", true)
  end

  function cls:forward(x)
    self:check_input(x, min_dim, max_dim, layout)
    local c = x:size(2)
    if rawget(self, "_lazy") then
      self:_create(c)
    elseif c ~= self.num_features then
      self:input_error(x, "expected %d channels in dimension 2, got %d", self.num_features, c)
    end
    local use_batch_stats = self.training or not self.track_running_stats
    local o = {training = use_batch_stats, momentum = self.momentum, eps = self.eps}
    if self.affine then
      return cnn.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, o)
    end
    return cnn.batch_norm(x, self.running_mean, self.running_var, o)
  end

  function cls:extra_repr()
    local s = string.format("%s, eps=%g, momentum=%g", tostring(self.num_features or "?"), self.eps, self.momentum)
    if not self.affine then s = s .. ", affine=false" end
    if not self.track_running_stats then s = s .. ", track_running_stats=false" end
    return s
  end

  M[name] = cls
end

batch_norm_class("BatchNorm1d", 2, 3, "N x C or N x C x L")
batch_norm_class("BatchNorm2d", 4, 4, "N x C x H x W")

return M
