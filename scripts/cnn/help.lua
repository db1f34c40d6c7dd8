-- cnn.help: short help texts for the names of cnn, keyed by full name ("cnn.zeros",
-- "cnn.nn.Conv2d", "cnn.Tensor:view"). Each text is a signature line and a line or two of meaning.
-- Methods are keyed by their type: cnn.Tensor, cnn.nn.Module, cnn.optim.Optimizer, cnn.data.Dataset,
-- cnn.Timer.
--
-- The table is also callable: help(name) returns the text to show for a name typed at the prompt
-- (`?cnn.zeros`, `?x:view` for a tensor x, `?model`), falling back to the value's type and fields.

local help = {
  [""] = [[
?name shows help for a name: ?cnn.zeros  ?cnn.nn.Conv2d  ?cnn.Tensor:view  ?x:sum (x a tensor)
Start with ?cnn (the functions), ?cnn.Tensor (tensor methods), ?cnn.nn, ?cnn.optim, ?cnn.data.
TAB completes names and fields; Ctrl-C stops a computation; Ctrl-D quits.]],

  ["cnn"] = [[
cnn: tensors, autograd, convolutional networks (the global `cnn` in cnnlua; require "cnn" elsewhere)
Submodules: cnn.nn (layers), cnn.optim, cnn.data, cnn.aug, cnn.image, cnn.sweep, cnn.help.
Lua side is 1-based (dims, indices, labels 1..C); float32; images are N x C x H x W.]],

  -- tensor creation
  ["cnn.Tensor"] = [[
cnn.Tensor: an n-dimensional float32 array with autograd.
Operators: x + y, x - y, x * y, x / y, -x, x ^ p (elementwise, broadcasting; numbers on either side);
x[i] selects along dim 1; x.grad is the gradient after backward; print(x) pretty-prints.]],
  ["cnn.tensor"] = [[
cnn.tensor(t) -> Tensor
A tensor from nested tables of numbers: cnn.tensor{{1,2,3},{4,5,6}} has shape 2x3.]],
  ["cnn.zeros"] = [[
cnn.zeros(d1, d2, ...) or cnn.zeros{d1, d2, ...} -> Tensor
A tensor of the given shape filled with 0.]],
  ["cnn.ones"] = [[
cnn.ones(d1, d2, ...) or cnn.ones{d1, d2, ...} -> Tensor
A tensor of the given shape filled with 1.]],
  ["cnn.full"] = [[
cnn.full(shape, value) -> Tensor
A tensor of the given shape (a table such as {2, 3}) filled with value.]],
  ["cnn.rand"] = [[
cnn.rand(d1, d2, ...) -> Tensor
Uniform random numbers in [0, 1); reproducible after cnn.manual_seed.]],
  ["cnn.randn"] = [[
cnn.randn(d1, d2, ...) -> Tensor
Standard normal random numbers (mean 0, std 1); reproducible after cnn.manual_seed.]],
  ["cnn.arange"] = [[
cnn.arange(start, stop, step?) -> Tensor
The 1-d tensor start, start+step, ... with stop excluded, as in NumPy: cnn.arange(0, 10) has 10 values.]],
  ["cnn.manual_seed"] = [[
cnn.manual_seed(seed)
Seeds the one generator behind every random op, so a run is reproducible on any machine.]],
  ["cnn.timer"] = [[
cnn.timer() -> Timer
A monotonic wall-clock stopwatch: t:elapsed() in seconds, t:reset() starts again.]],
  ["cnn.Timer:elapsed"] = [[
t:elapsed() -> seconds
Wall-clock seconds since the timer was created or last reset.]],
  ["cnn.Timer:reset"] = [[
t:reset()
Starts the stopwatch again from zero.]],
  ["cnn.defer_interrupts"] = [[
cnn.defer_interrupts(on) -> was_on
While on, the first Ctrl-C (in cnnlua) or cnn_interrupt() is only recorded, so that a loop can stop
at a clean point: check cnn.take_interrupt() between steps. A second Ctrl-C stops at once. cnn.fit
uses it to finish the step in progress and save before returning.]],
  ["cnn.take_interrupt"] = [[
cnn.take_interrupt() -> boolean
True once for an interrupt that arrived while cnn.defer_interrupts was on (and clears it).]],
  ["cnn.set_num_threads"] = [[
cnn.set_num_threads(n)
Sets how many threads the runtime uses for its parallel loops and matrix products. With two or more,
each thread keeps a core of its own (the calling thread included); CNN_PIN_THREADS=0 in the
environment turns that off.]],
  ["cnn.get_num_threads"] = [[
cnn.get_num_threads() -> n
How many threads the runtime uses.]],

  -- tensor methods: shape and data
  ["cnn.Tensor:shape"] = [[
x:shape() -> {d1, d2, ...}
The sizes of all dimensions as a table.]],
  ["cnn.Tensor:size"] = [[
x:size(dim) -> n
The size of one dimension (1-based; negative counts from the end).]],
  ["cnn.Tensor:dim"] = [[
x:dim() -> n
The number of dimensions.]],
  ["cnn.Tensor:numel"] = [[
x:numel() -> n
The number of elements.]],
  ["cnn.Tensor:totable"] = [[
x:totable() -> nested tables
The values as nested Lua tables, the inverse of cnn.tensor.]],
  ["cnn.Tensor:item"] = [[
x:item() -> number
The value of a one-element tensor.]],
  ["cnn.Tensor:view"] = [[
x:view(d1, d2, ...) -> Tensor
The same data seen with another shape (no copy); x must be contiguous. One size may be -1.]],
  ["cnn.Tensor:reshape"] = [[
x:reshape(d1, d2, ...) -> Tensor
Like view, copying when the layout does not allow a view.]],
  ["cnn.Tensor:transpose"] = [[
x:transpose(dim1, dim2) -> Tensor
A view with two dimensions swapped.]],
  ["cnn.Tensor:permute"] = [[
x:permute(d1, d2, ...) -> Tensor
A view with the dimensions reordered: x:permute(2, 1) transposes a matrix.]],
  ["cnn.Tensor:narrow"] = [[
x:narrow(dim, start, length) -> Tensor
A view of length entries of dim from start (1-based).]],
  ["cnn.Tensor:select"] = [[
x:select(dim, index) -> Tensor
A view of one index of dim, with that dimension removed; x[i] is x:select(1, i).]],
  ["cnn.Tensor:contiguous"] = [[
x:contiguous() -> Tensor
x itself when its elements are laid out in order, else a compact copy.]],
  ["cnn.Tensor:clone"] = [[
x:clone() -> Tensor
A copy with its own storage.]],
  ["cnn.Tensor:fill"] = [[
x:fill(value) -> x
Sets every element to value, in place.]],
  ["cnn.Tensor:copy"] = [[
x:copy(y) -> x
Copies the values of y into x, in place (y broadcasts to x's shape).]],

  -- tensor methods: math
  ["cnn.Tensor:matmul"] = [[
x:matmul(y) -> Tensor
Matrix product; batched over leading dimensions.]],
  ["cnn.Tensor:exp"] = "x:exp() -> Tensor\nElementwise e^x.",
  ["cnn.Tensor:log"] = "x:log() -> Tensor\nElementwise natural logarithm.",
  ["cnn.Tensor:sqrt"] = "x:sqrt() -> Tensor\nElementwise square root.",
  ["cnn.Tensor:abs"] = "x:abs() -> Tensor\nElementwise absolute value.",
  ["cnn.Tensor:relu"] = "x:relu() -> Tensor\nElementwise max(x, 0).",
  ["cnn.Tensor:sigmoid"] = "x:sigmoid() -> Tensor\nElementwise 1 / (1 + e^-x).",
  ["cnn.Tensor:tanh"] = "x:tanh() -> Tensor\nElementwise hyperbolic tangent.",
  ["cnn.Tensor:sum"] = [[
x:sum(dim?, keepdim?) -> Tensor
The sum of all elements, or along dim (kept as size 1 when keepdim is true).]],
  ["cnn.Tensor:mean"] = [[
x:mean(dim?, keepdim?) -> Tensor
The mean of all elements, or along dim.]],
  ["cnn.Tensor:max"] = [[
x:max(dim?) -> Tensor
The largest element, or the largest along dim.]],
  ["cnn.Tensor:min"] = [[
x:min(dim?) -> Tensor
The smallest element, or the smallest along dim.]],
  ["cnn.Tensor:argmax"] = [[
x:argmax(dim?) -> Tensor
1-based index of the largest element (over all elements, or along dim).]],
  ["cnn.Tensor:std"] = [[
x:std(dim?, keepdim?) -> Tensor
The standard deviation of all elements, or along dim.]],

  ["cnn.Tensor:is_contiguous"] = "x:is_contiguous() -> boolean\nWhether the elements are laid out in row-major order without gaps.",
  ["cnn.Tensor:stride"] = "x:stride(dim?) -> n or {s1, s2, ...}\nElements to skip to move one step along dim (all dims without dim).",
  ["cnn.Tensor:t"] = "x:t() -> Tensor\nThe transpose of a matrix (a view).",
  ["cnn.Tensor:expand"] = "x:expand(d1, d2, ...) -> Tensor\nA view repeating size-1 dimensions to the given sizes, without copying.",
  ["cnn.Tensor:squeeze"] = "x:squeeze(dim?) -> Tensor\nA view without size-1 dimensions (only dim when given).",
  ["cnn.Tensor:unsqueeze"] = "x:unsqueeze(dim) -> Tensor\nA view with a new size-1 dimension at dim.",
  ["cnn.Tensor:flatten"] = "x:flatten(start_dim?, end_dim?) -> Tensor\nMerges dimensions start_dim..end_dim (all by default) into one.",

  -- tensor methods: more elementwise math (each also cnn.name(x, ...))
  ["cnn.Tensor:add"] = "x:add(y) -> Tensor\nx + y with broadcasting; y may be a number.",
  ["cnn.Tensor:sub"] = "x:sub(y) -> Tensor\nx - y with broadcasting; y may be a number.",
  ["cnn.Tensor:mul"] = "x:mul(y) -> Tensor\nx * y elementwise with broadcasting; y may be a number.",
  ["cnn.Tensor:div"] = "x:div(y) -> Tensor\nx / y elementwise with broadcasting; y may be a number.",
  ["cnn.Tensor:pow"] = "x:pow(p) -> Tensor\nx ^ p elementwise; p a number or a tensor.",
  ["cnn.Tensor:neg"] = "x:neg() -> Tensor\n-x.",
  ["cnn.Tensor:reciprocal"] = "x:reciprocal() -> Tensor\n1 / x elementwise.",
  ["cnn.Tensor:square"] = "x:square() -> Tensor\nx * x elementwise.",
  ["cnn.Tensor:rsqrt"] = "x:rsqrt() -> Tensor\n1 / sqrt(x) elementwise.",
  ["cnn.Tensor:log1p"] = "x:log1p() -> Tensor\nlog(1 + x), accurate for small x.",
  ["cnn.Tensor:expm1"] = "x:expm1() -> Tensor\ne^x - 1, accurate for small x.",
  ["cnn.Tensor:sin"] = "x:sin() -> Tensor\nElementwise sine.",
  ["cnn.Tensor:cos"] = "x:cos() -> Tensor\nElementwise cosine.",
  ["cnn.Tensor:sign"] = "x:sign() -> Tensor\n-1, 0 or 1 by the sign of each element.",
  ["cnn.Tensor:floor"] = "x:floor() -> Tensor\nRounds down elementwise.",
  ["cnn.Tensor:ceil"] = "x:ceil() -> Tensor\nRounds up elementwise.",
  ["cnn.Tensor:round"] = "x:round() -> Tensor\nRounds to the nearest integer elementwise.",
  ["cnn.Tensor:clamp"] = "x:clamp(min?, max?) -> Tensor\nLimits every element to [min, max]; nil leaves that side open.",
  ["cnn.Tensor:minimum"] = "x:minimum(y) -> Tensor\nThe elementwise smaller of x and y (broadcasting).",
  ["cnn.Tensor:maximum"] = "x:maximum(y) -> Tensor\nThe elementwise larger of x and y (broadcasting).",
  ["cnn.Tensor:softplus"] = "x:softplus() -> Tensor\nlog(1 + e^x), a smooth relu.",
  ["cnn.Tensor:gelu"] = "x:gelu() -> Tensor\nx * Phi(x), the Gaussian error linear unit.",
  ["cnn.Tensor:silu"] = "x:silu() -> Tensor\nx * sigmoid(x) (swish).",
  ["cnn.Tensor:elu"] = "x:elu(alpha=1) -> Tensor\nx for x > 0, alpha * (e^x - 1) otherwise.",
  ["cnn.Tensor:leaky_relu"] = "x:leaky_relu(slope=0.01) -> Tensor\nx for x > 0, slope * x otherwise.",
  ["cnn.Tensor:softmax"] = "x:softmax(dim) -> Tensor\nSoftmax along dim (see cnn.softmax).",
  ["cnn.Tensor:log_softmax"] = "x:log_softmax(dim) -> Tensor\nLog-softmax along dim (see cnn.log_softmax).",
  ["cnn.Tensor:eq"] = "x:eq(y) -> Tensor\n1 where x == y, else 0 (broadcasting; y may be a number).",
  ["cnn.Tensor:ne"] = "x:ne(y) -> Tensor\n1 where x ~= y, else 0.",
  ["cnn.Tensor:lt"] = "x:lt(y) -> Tensor\n1 where x < y, else 0.",
  ["cnn.Tensor:le"] = "x:le(y) -> Tensor\n1 where x <= y, else 0.",
  ["cnn.Tensor:gt"] = "x:gt(y) -> Tensor\n1 where x > y, else 0.",
  ["cnn.Tensor:ge"] = "x:ge(y) -> Tensor\n1 where x >= y, else 0.",
  ["cnn.Tensor:var"] = "x:var(dim?, keepdim?, unbiased=true) -> Tensor\nThe variance of all elements, or along dim.",
  ["cnn.Tensor:argmin"] = "x:argmin(dim?) -> Tensor\n1-based index of the smallest element (over all elements, or along dim).",
  ["cnn.where"] = "cnn.where(cond, a, b) -> Tensor\na where cond is non-zero, else b (broadcasting; a and b may be numbers).",
  ["cnn.linear"] = "cnn.linear(x, weight, bias?) -> Tensor\nx W^T + b, the function behind nn.Linear.",
  ["cnn.l1_loss"] = "cnn.l1_loss(input, target) -> Tensor\nMean absolute error.",
  ["cnn.empty"] = "cnn.empty(d1, d2, ...) -> Tensor\nA tensor of the given shape with unspecified contents (to be filled).",
  ["cnn.uniform"] = "cnn.uniform(shape, low, high) -> Tensor\nUniform random numbers in [low, high).",
  ["cnn.is_tensor"] = "cnn.is_tensor(v) -> boolean\nWhether v is a tensor.",
  ["cnn.version"] = "cnn.version\nThe version of the cnn runtime, as a string.",
  ["cnn.memory_in_use"] = "cnn.memory_in_use() -> bytes\nTensor storage currently allocated by the process.",
  ["cnn.memory_cached"] = "cnn.memory_cached() -> bytes\nFreed tensor blocks kept for reuse (at most 256 MiB).",
  ["cnn.empty_cache"] = "cnn.empty_cache()\nReturns the cached freed blocks, and the kernels convolutions keep for inference, to the system.",
  ["cnn.get_rng_state"] = "cnn.get_rng_state() -> {4 integers}\nThe random generator's state, to save in a checkpoint.",
  ["cnn.set_rng_state"] = "cnn.set_rng_state(state)\nRestores a state from get_rng_state, so random draws continue exactly.",
  ["cnn.safetensors_save"] = [[
cnn.safetensors_save(path, {name = tensor, ...}, metadata?)
Writes tensors to a safetensors file (the piece cnn.save builds on).]],
  ["cnn.safetensors_load"] = [[
cnn.safetensors_load(path) -> {name = tensor, ...}, metadata
Reads every tensor of a safetensors file; the file is fully checked first.]],
  ["cnn.idx_load"] = [[
cnn.idx_load(path, scale?) -> Tensor
An IDX file: images N x 1 x H x W (divided by 255 when scale is true) or labels shifted to 1..C.]],

  -- autograd
  ["cnn.Tensor:requires_grad"] = [[
x:requires_grad(flag?) -> x
Marks x as a leaf whose gradient backward computes (flag defaults to true).]],
  ["cnn.Tensor:backward"] = [[
loss:backward(grad?)
Backpropagates from loss (one element unless grad is given), filling .grad of the leaves.]],
  ["cnn.Tensor.grad"] = [[
x.grad -> Tensor or nil
The gradient accumulated by backward; nil before the first backward.]],
  ["cnn.Tensor:detach"] = [[
x:detach() -> Tensor
The same data cut from the autograd graph.]],
  ["cnn.Tensor:zero_grad"] = "x:zero_grad()\nClears x.grad.",
  ["cnn.Tensor:needs_grad"] = "x:needs_grad() -> boolean\nWhether gradients flow to x (it requires grad or depends on something that does).",
  ["cnn.set_grad_enabled"] = "cnn.set_grad_enabled(flag)\nTurns recording of the autograd graph on or off (cnn.no_grad is the scoped form).",
  ["cnn.is_grad_enabled"] = "cnn.is_grad_enabled() -> boolean\nWhether ops currently record the autograd graph.",
  ["cnn.no_grad"] = [[
cnn.no_grad(fn, ...) -> results of fn
Runs fn without recording the autograd graph (evaluation, weight updates).]],

  -- functional ops
  ["cnn.conv2d"] = [[
cnn.conv2d(input, weight, bias?, {stride=1, padding=0, dilation=1, groups=1}) -> Tensor
2-d cross-correlation: input N x C x H x W, weight O x C/groups x kH x kW.
padding: a number, {ph, pw}, "same" or "valid".]],
  ["cnn.conv_transpose2d"] = [[
cnn.conv_transpose2d(input, weight, bias?, {stride, padding, output_padding, groups, dilation}) -> Tensor
Transposed convolution (the gradient of conv2d), growing the image; weight C x O/groups x kH x kW.]],
  ["cnn.max_pool2d"] = [[
cnn.max_pool2d(input, kernel, {stride=kernel, padding=0, dilation=1, ceil_mode=false}) -> Tensor
The largest value of each window; output size (W - F) / S + 1.]],
  ["cnn.avg_pool2d"] = [[
cnn.avg_pool2d(input, kernel, {stride=kernel, padding=0, ceil_mode=false, count_include_pad=true}) -> Tensor
The mean of each window.]],
  ["cnn.adaptive_avg_pool2d"] = [[
cnn.adaptive_avg_pool2d(input, {oh, ow}) -> Tensor
Averages over windows chosen so the output is oh x ow whatever the input size.]],
  ["cnn.upsample"] = [[
cnn.upsample(input, {scale=2, mode="nearest"|"bilinear"}) -> Tensor
Enlarges the image by scale.]],
  ["cnn.batch_norm"] = [[
cnn.batch_norm(input, running_mean, running_var, weight?, bias?, {training=false, momentum=0.1, eps=1e-5}) -> Tensor
Normalizes each channel; in training uses batch statistics and updates the running ones.]],
  ["cnn.dropout"] = [[
cnn.dropout(input, p, training) -> Tensor
Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not training.]],
  ["cnn.cat"] = [[
cnn.cat({a, b, ...}, dim) -> Tensor
Joins tensors along dim (U-Net skip connections).]],
  ["cnn.pad"] = [[
cnn.pad(input, {left, right, top, bottom}, mode) -> Tensor
Pads the last two dimensions; mode "constant" (zeros), "reflect" or "replicate".]],
  ["cnn.softmax"] = [[
cnn.softmax(x, dim) -> Tensor
exp(x) / sum(exp(x)) along dim, computed stably.]],
  ["cnn.log_softmax"] = [[
cnn.log_softmax(x, dim) -> Tensor
log(softmax(x)) along dim, computed stably.]],
  ["cnn.cross_entropy"] = [[
cnn.cross_entropy(logits, labels, {label_smoothing=0}) -> Tensor
Mean cross-entropy of N x C logits against labels 1..C (log_softmax + nll_loss).]],
  ["cnn.nll_loss"] = [[
cnn.nll_loss(log_probs, labels) -> Tensor
Mean negative log-likelihood of labels 1..C under N x C log-probabilities.]],
  ["cnn.mse_loss"] = [[
cnn.mse_loss(input, target) -> Tensor
Mean squared error.]],
  ["cnn.bce_loss"] = [[
cnn.bce_loss(probs, target) -> Tensor
Binary cross-entropy of probabilities in (0, 1) against targets in [0, 1].]],
  ["cnn.bce_with_logits"] = [[
cnn.bce_with_logits(logits, target) -> Tensor
Binary cross-entropy on raw scores (sigmoid inside, numerically stable).]],
  ["cnn.clip_grad_norm"] = [[
cnn.clip_grad_norm(params, max_norm) -> total_norm
Scales the gradients of params so that their joint L2 norm is at most max_norm.]],

  -- nn
  ["cnn.nn"] = [[
cnn.nn: layers and losses as modules. Constructors take PyTorch-style positional arguments or
one Keras-style options table; input sizes may be omitted and are inferred on the first forward.]],
  ["cnn.nn.Module"] = [[
cnn.nn.Module: the base of every layer. Call a module as model(x) (same as model:forward(x)).
Define new ones with cnn.nn.Module:extend("Name").]],
  ["cnn.nn.Module:extend"] = [[
nn.Module:extend(name) -> class
A new module class in plain Lua: define init(self, ...) and forward(self, x) on it.]],
  ["cnn.nn.Module:forward"] = [[
model:forward(x) -> output       (also model(x))
Runs the module on x.]],
  ["cnn.nn.Module:parameters"] = [[
model:parameters() -> {Tensor, ...}
The trainable tensors of the module and its children.]],
  ["cnn.nn.Module:named_parameters"] = [[
model:named_parameters() -> {{name, Tensor}, ...}
Parameters in registration order as {name, tensor} pairs, names like "features.1.weight"; the result
can also be indexed by name (np["1.weight"]). model:state_dict() gives a name -> tensor table.]],
  ["cnn.nn.Module:zero_grad"] = [[
model:zero_grad()
Clears the gradients of all parameters.]],
  ["cnn.nn.Module:train"] = [[
model:train() -> model
Training mode: dropout active, batch norm uses and updates batch statistics.]],
  ["cnn.nn.Module:eval"] = [[
model:eval() -> model
Evaluation mode: dropout off, batch norm uses its running statistics.]],
  ["cnn.nn.Module:freeze"] = [[
model:freeze() -> model
Stops gradients for its parameters (transfer learning: keep the early layers fixed).]],
  ["cnn.nn.Module:unfreeze"] = [[
model:unfreeze() -> model
Makes its parameters trainable again.]],
  ["cnn.nn.Module:state_dict"] = [[
model:state_dict() -> {name = Tensor, ...}
Parameters and buffers (running statistics) by name, as saved in checkpoints.]],
  ["cnn.nn.Module:load_state_dict"] = [[
model:load_state_dict(sd)
Copies tensors from sd into the module; errors name missing or mismatched tensors and shapes.]],
  ["cnn.nn.Module:summary"] = [[
model:summary{C, H, W}
Prints a Keras-like table: each layer, its output shape, parameters and feature maps; totals.]],
  ["cnn.nn.Module:add"] = [[
model:add(layer) -> model
Appends a layer to a Sequential.]],
  ["cnn.nn.Conv2d"] = [[
nn.Conv2d(in_channels, out_channels, kernel_size, {stride=1, padding=0, dilation=1, groups=1, bias=true})
nn.Conv2d{filters=8, kernel_size={5,5}, input_shape={32,32,3}}   (Keras form; in_channels inferred)
A 2-d convolution layer (see cnn.conv2d).]],
  ["cnn.nn.ConvTranspose2d"] = [[
nn.ConvTranspose2d(in_channels, out_channels, kernel_size, {stride, padding, output_padding, groups, dilation})
A transposed convolution layer that grows the image (decoders, GAN generators, U-Nets).]],
  ["cnn.nn.MaxPool2d"] = [[
nn.MaxPool2d(kernel, {stride=kernel, padding=0, dilation=1, ceil_mode=false})
Max pooling layer (see cnn.max_pool2d).]],
  ["cnn.nn.AvgPool2d"] = [[
nn.AvgPool2d(kernel, {stride=kernel, padding=0, ceil_mode=false, count_include_pad=true})
Average pooling layer (see cnn.avg_pool2d).]],
  ["cnn.nn.AdaptiveAvgPool2d"] = [[
nn.AdaptiveAvgPool2d{oh, ow}
Pools to a fixed oh x ow output; {1, 1} is global average pooling.]],
  ["cnn.nn.Upsample"] = [[
nn.Upsample{scale=2, mode="nearest"|"bilinear"}
Upsampling layer (see cnn.upsample).]],
  ["cnn.nn.Flatten"] = [[
nn.Flatten()
Turns N x C x H x W into N x (C*H*W), between convolutions and dense layers.]],
  ["cnn.nn.Linear"] = [[
nn.Linear(in_features, out_features, {bias=true})   also nn.Linear{units=120}
A fully connected layer y = x W^T + b; in_features may be omitted (inferred).]],
  ["cnn.nn.Dense"] = [[
nn.Dense(...)
Keras' name for nn.Linear.]],
  ["cnn.nn.BatchNorm1d"] = [[
nn.BatchNorm1d(num_features, {momentum=0.1, eps=1e-5})
Batch normalization of N x F activations (dense layers).]],
  ["cnn.nn.BatchNorm2d"] = [[
nn.BatchNorm2d(num_channels, {momentum=0.1, eps=1e-5})
Batch normalization per channel of N x C x H x W (after convolutions).]],
  ["cnn.nn.Dropout"] = [[
nn.Dropout(p=0.5)
Zeroes activations with probability p in training, scaling the rest by 1/(1-p).]],
  ["cnn.nn.Dropout2d"] = [[
nn.Dropout2d(p=0.5)
Drops whole channels of N x C x H x W in training.]],
  ["cnn.nn.ReLU"] = "nn.ReLU()\nmax(x, 0).",
  ["cnn.nn.LeakyReLU"] = "nn.LeakyReLU(negative_slope=0.01)\nx for x > 0, slope * x otherwise.",
  ["cnn.nn.ELU"] = "nn.ELU(alpha=1)\nx for x > 0, alpha * (e^x - 1) otherwise.",
  ["cnn.nn.Sigmoid"] = "nn.Sigmoid()\n1 / (1 + e^-x).",
  ["cnn.nn.Tanh"] = "nn.Tanh()\nHyperbolic tangent.",
  ["cnn.nn.Softmax"] = "nn.Softmax(dim=-1)\nSoftmax along dim (see cnn.softmax).",
  ["cnn.nn.LogSoftmax"] = "nn.LogSoftmax(dim=-1)\nLog-softmax along dim (see cnn.log_softmax).",
  ["cnn.nn.Identity"] = "nn.Identity()\nReturns its input unchanged.",
  ["cnn.nn.Sequential"] = [[
nn.Sequential{layer1, layer2, ...}
Runs the layers in order; model:add(layer) appends one.]],
  ["cnn.nn.CrossEntropyLoss"] = [[
nn.CrossEntropyLoss{label_smoothing=0}
loss(logits, labels): cross-entropy with labels 1..C (see cnn.cross_entropy).]],
  ["cnn.nn.NLLLoss"] = "nn.NLLLoss()\nloss(log_probs, labels): negative log-likelihood (see cnn.nll_loss).",
  ["cnn.nn.MSELoss"] = "nn.MSELoss()\nloss(input, target): mean squared error.",
  ["cnn.nn.BCELoss"] = "nn.BCELoss()\nloss(probs, target): binary cross-entropy on probabilities.",
  ["cnn.nn.BCEWithLogitsLoss"] = "nn.BCEWithLogitsLoss()\nloss(logits, target): binary cross-entropy on raw scores.",
  ["cnn.nn.L1Loss"] = "nn.L1Loss()\nloss(input, target): mean absolute error.",

  -- optim
  ["cnn.optim"] = [[
cnn.optim: optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedules (cnn.optim.lr).
An optimizer takes model:parameters() or a list of parameter groups {params=..., lr=...}.]],
  ["cnn.optim.Optimizer"] = [[
cnn.optim.Optimizer: the base of the optimizers; opt:step(), opt:zero_grad(), opt:state_dict(),
opt:load_state_dict(s). Parameter groups carry their own options (lr, weight_decay, ...).]],
  ["cnn.optim.SGD"] = [[
cnn.optim.SGD(params, {lr=0.01, momentum=0, nesterov=false, weight_decay=0}) -> Optimizer
Stochastic gradient descent; momentum is the friction term beta.]],
  ["cnn.optim.Adam"] = [[
cnn.optim.Adam(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0}) -> Optimizer
Adam: momentum plus per-parameter step sizes from squared-gradient averages.]],
  ["cnn.optim.AdamW"] = [[
cnn.optim.AdamW(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=1e-2}) -> Optimizer
Adam with decoupled weight decay.]],
  ["cnn.optim.RMSprop"] = [[
cnn.optim.RMSprop(params, {lr=1e-2, alpha=0.99, eps=1e-8, momentum=0, weight_decay=0}) -> Optimizer
Divides each step by a running RMS of the gradients.]],
  ["cnn.optim.Optimizer:zero_grad"] = [[
opt:zero_grad()
Clears the gradients of every parameter the optimizer updates.]],
  ["cnn.optim.Optimizer:step"] = [[
opt:step()
Updates the parameters from their gradients.]],
  ["cnn.optim.Optimizer:state_dict"] = [[
opt:state_dict() -> table
Options and per-parameter state (moments, step counts), for checkpoints.]],
  ["cnn.optim.Optimizer:load_state_dict"] = [[
opt:load_state_dict(s)
Restores what state_dict returned, to resume training exactly.]],
  ["cnn.optim.lr"] = [[
cnn.optim.lr: learning-rate schedules (step, cosine, one_cycle) that adjust an optimizer's lr.]],
  ["cnn.optim.lr.step"] = [[
cnn.optim.lr.step(opt, {step_size=..., gamma=0.1}) -> scheduler
Multiplies lr by gamma every step_size epochs; call scheduler:step() once per epoch.]],
  ["cnn.optim.lr.cosine"] = [[
cnn.optim.lr.cosine(opt, {t_max=..., eta_min=0}) -> scheduler
Cosine annealing of lr from its initial value down to eta_min over t_max steps.]],
  ["cnn.optim.lr.one_cycle"] = [[
cnn.optim.lr.one_cycle(opt, {max_lr=..., total_steps=...}) -> scheduler
Warms lr up to max_lr and anneals it back down over total_steps (call step() per batch).]],

  -- data
  ["cnn.data"] = [[
cnn.data: datasets (fashion_mnist, mnist, cifar10, idx, image_folder, tensor_dataset) and the
batch loader. A dataset has #ds, ds[i] -> {image, label} (label 1..C), ds:get(i) -> image, label,
ds.classes, ds:split(fraction), ds:subset(indices).]],
  ["cnn.data.Dataset"] = [[
cnn.data.Dataset: what the datasets share: #ds, ds[i] -> {image, label}, ds:get(i) -> image, label,
ds.classes, ds:split(fraction, {seed=}), ds:subset(indices).]],
  ["cnn.data.fashion_mnist"] = [[
cnn.data.fashion_mnist{split="train"|"test", dir=...} -> Dataset
Fashion-MNIST (28x28 grey, 10 classes); by default from the Debian dataset-fashion-mnist package.]],
  ["cnn.data.mnist"] = [[
cnn.data.mnist{dir=..., split="train"|"test"} -> Dataset
MNIST handwritten digits from IDX files in dir.]],
  ["cnn.data.idx"] = [[
cnn.data.idx(images_file, labels_file) -> Dataset
A dataset from a pair of IDX files (gzip allowed); labels 0..C-1 become 1..C.]],
  ["cnn.data.cifar10"] = [[
cnn.data.cifar10{dir=..., split="train"|"test"} -> Dataset
CIFAR-10 (32x32 colour, 10 classes) from its binary batches in dir.]],
  ["cnn.data.image_folder"] = [[
cnn.data.image_folder(dir, {size={h, w}}) -> Dataset
One sub-folder per class; PNG, JPEG, BMP, ... images resized to size.]],
  ["cnn.data.tensor_dataset"] = [[
cnn.data.tensor_dataset(x, y) -> Dataset
A dataset over tensors x (N x C x H x W) and y (N labels 1..C): ds:get(i) is x[i], y[i].]],
  ["cnn.data.loader"] = [[
cnn.data.loader(ds, {batch_size=64, shuffle=false, drop_last=false, transform=nil, seed=1}) -> loader
for x, y in loader do ... end is one epoch of batches (y holds labels 1..C); #loader is the number
of batches; the same seed gives the same batches.]],
  ["cnn.data.Dataset:split"] = [[
ds:split(fraction) -> first, rest
Splits into two datasets, fraction of the examples in the first (e.g. 0.9 train, 0.1 validation).]],
  ["cnn.data.Dataset.classes"] = [[
ds.classes -> {"T-shirt/top", ...}
Class names in label order (label i is ds.classes[i]).]],

  -- aug
  ["cnn.aug"] = [[
cnn.aug: data augmentation. Every transform is callable on a batch (N x C x H x W) or one image
(C x H x W), drawing its randomness independently per image. Combine with cnn.aug.compose.]],
  ["cnn.aug.compose"] = [[
cnn.aug.compose{t1, t2, ...} -> transform
Applies the transforms in order.]],
  ["cnn.aug.random_flip"] = [[
cnn.aug.random_flip{horizontal=true, vertical=false, p=0.5} -> transform
Mirrors images at random.]],
  ["cnn.aug.random_rotation"] = [[
cnn.aug.random_rotation(degrees, {fill_mode="nearest"}) -> transform
Rotates each image by a random angle in [-degrees, degrees].]],
  ["cnn.aug.random_crop"] = [[
cnn.aug.random_crop(size, {padding=0}) -> transform
Pads, then crops a random size x size window.]],
  ["cnn.aug.normalize"] = [[
cnn.aug.normalize(mean, std) -> transform
(x - mean) / std; mean and std may be per-channel tables.]],
  ["cnn.aug.image_data_generator"] = [[
cnn.aug.image_data_generator{rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
  shear_range=0.2, zoom_range=0.2, horizontal_flip=true, vertical_flip=true, fill_mode="nearest"}
Keras' ImageDataGenerator as one transform; fill_mode nearest|constant|reflect|wrap.]],
  ["cnn.aug.random_brightness"] = [[
cnn.aug.random_brightness(b) -> transform
Multiplies each image by a random factor in [max(0, 1 - b), 1 + b] (torchvision's brightness).]],
  ["cnn.aug.random_contrast"] = [[
cnn.aug.random_contrast(c) -> transform
Blends each image with its mean gray by a random factor in [max(0, 1 - c), 1 + c].]],
  ["cnn.aug.color_jitter"] = [[
cnn.aug.color_jitter{brightness=, contrast=, saturation=, hue=, p=1} -> transform
torchvision's ColorJitter for RGB images in [0, 1]; results are clamped to [0, 1].]],
  ["cnn.aug.random_shift"] = [[
cnn.aug.random_shift(width, height?, {fill_mode=, cval=}) -> transform
Shifts by up to width/height: values below 1 are fractions of the size, others pixels (as Keras).]],
  ["cnn.aug.random_zoom"] = [[
cnn.aug.random_zoom(range, {keep_aspect=false}) -> transform
Keras' zoom: a number z draws factors from [1 - z, 1 + z] (a pair gives the range itself).]],
  ["cnn.aug.random_shear"] = [[
cnn.aug.random_shear(degrees, {fill_mode=, cval=}) -> transform
Shears by an angle drawn from [-degrees, degrees], as Keras' shear_range.]],
  ["cnn.aug.random_affine"] = [[
cnn.aug.random_affine{rotation=, width_shift=, height_shift=, zoom=, shear=, horizontal_flip=, ...}
One combined affine warp per image with bilinear sampling and a fill mode.]],
  ["cnn.aug.random_resized_crop"] = [[
cnn.aug.random_resized_crop(size, {scale={0.08, 1}, ratio={3/4, 4/3}}) -> transform
Crops a random area and aspect ratio, resized to size (torchvision's RandomResizedCrop).]],
  ["cnn.aug.random_channel_shift"] = [[
cnn.aug.random_channel_shift(range) -> transform
Adds a random offset in [-range, range] to each channel (Keras' channel_shift_range).]],
  ["cnn.aug.ImageDataGenerator"] = "cnn.aug.ImageDataGenerator{...}: the same as cnn.aug.image_data_generator.",
  ["cnn.aug.Transform"] = [[
cnn.aug.Transform: the class of every transform; t(x, seed?) applies it, t:pipeline() gives its C
pipeline (for worker threads) when it is built from built-in operations only.]],
  ["cnn.aug.is_transform"] = "cnn.aug.is_transform(v) -> boolean",
  ["cnn.aug.gaussian_noise"] = [[
cnn.aug.gaussian_noise(std) -> transform
Adds normal noise with standard deviation std.]],
  ["cnn.aug.random_erasing"] = [[
cnn.aug.random_erasing{p=0.5, scale={0.02, 0.33}} -> transform
Blanks a random rectangle of each image with probability p.]],

  -- image
  ["cnn.image"] = [[
cnn.image: loading, saving, resizing images; grids of batches; classic kernels (gaussian, sobel).]],
  ["cnn.image.load"] = [[
cnn.image.load(path) -> Tensor
An image file (PNG, JPEG, BMP, ...) as C x H x W with values in [0, 1].]],
  ["cnn.image.save"] = [[
cnn.image.save(path, t)
Writes a C x H x W (or H x W) tensor in [0, 1] as an image; the format follows the extension.]],
  ["cnn.image.grid"] = [[
cnn.image.grid(batch, {nrow=8, padding=2}) -> Tensor
Tiles an N x C x H x W batch into one image.]],
  ["cnn.image.resize"] = [[
cnn.image.resize(t, h, w) -> Tensor
Resizes an image (bilinear).]],
  ["cnn.image.decode"] = [[
cnn.image.decode(bytes, {channels=n, name=...}) -> C x H x W in [0, 1]
Decodes an image held in a string (PNG, JPEG, BMP, TGA, GIF first frame).]],
  ["cnn.image.grayscale"] = [[
cnn.image.grayscale(t) -> 1 x H x W
ITU-R 601 luma of an RGB(A) image; gray images are returned as they are.]],
  ["cnn.image.convolve"] = [[
cnn.image.convolve(img, kernel, {padding="reflect"}) -> same size as img
Cross-correlates each channel with a 2-d kernel (as cnn.conv2d; differentiable).]],
  ["cnn.image.kernel"] = "cnn.image.kernel: hand-made filters (gaussian, sobel) to use with cnn.conv2d.",
  ["cnn.image.kernel.gaussian"] = [[
cnn.image.kernel.gaussian(size, sigma) -> Tensor
A size x size Gaussian blur kernel that sums to 1.]],
  ["cnn.image.kernel.sobel"] = [[
cnn.image.kernel.sobel("x"|"y") -> Tensor
The 3 x 3 Sobel edge kernel for horizontal or vertical gradients.]],

  -- training, checkpoints, sweeps
  ["cnn.fit"] = [[
cnn.fit(model, loader, {epochs, optimizer, loss, val=nil, metrics={"accuracy"}, checkpoint=nil, resume=false}) -> history
Trains for epochs, printing loss and metrics per epoch; checkpoint/resume continue an interrupted run.]],
  ["cnn.evaluate"] = [[
cnn.evaluate(model, loader, {loss=...}) -> {loss=..., accuracy=...}
Runs the model in eval mode over loader.]],
  ["cnn.save"] = [[
cnn.save(path, model_or_tensors)
Writes a safetensors file (data only, never code), atomically.]],
  ["cnn.load"] = [[
cnn.load(path, model?) -> model or {name = Tensor}
Reads a safetensors file into model; errors name missing or mismatched tensors and shapes.]],
  ["cnn.sweep"] = [[
cnn.sweep{space={lr={1e-3, 3e-3}, dropout=cnn.sweep.uniform(0, 0.5)}, strategy="grid"|"random",
  trials=20, workers=2, metric="val_accuracy", mode="max", out="runs/sweep1", run=function(cfg, report) end}
Hyper-parameter search: runs run(cfg) per configuration and ranks the results by metric.]],
  ["cnn.sweep.uniform"] = [[
cnn.sweep.uniform(low, high)
A dimension drawn uniformly from [low, high]: per trial (random), per grid point (grid).]],
  ["cnn.sweep.log_uniform"] = [[
cnn.sweep.log_uniform(low, high)
A dimension whose logarithm is uniform: the usual choice for learning rates.]],
  ["cnn.sweep.int"] = "cnn.sweep.int(low, high)\nA whole number drawn uniformly from low..high.",
  ["cnn.sweep.choice"] = "cnn.sweep.choice{a, b, ...}\nOne of the values, drawn uniformly (a plain list is a grid axis).",
  ["cnn.sweep.asha"] = [[
cnn.sweep.asha{min_resource=1, eta=3, max_resource=}
Asynchronous successive halving: report(epoch, metrics) stops trials outside the top 1/eta at
each rung; the leaderboard marks them "stopped".]],
  ["cnn.sweep.show"] = "cnn.sweep.show(dir) -> summary\nPrints the leaderboard of a sweep directory.",
  ["cnn.sweep.load"] = "cnn.sweep.load(dir) -> records, description\nThe trial records of a sweep directory.",
  ["cnn.sweep.config"] = "cnn.sweep.config(dir, trial) -> {params, seed, threads}\nHow one trial was run.",
  ["cnn.sweep.rerun"] = [[
cnn.sweep.rerun(dir, trial, run) -> record
Runs one trial again in this process with its parameters, seed and thread count.]],
  ["cnn.help"] = [[
cnn.help(name) -> text
This help; at the prompt type ?name.]],
}

-- ---- looking names up ---------------------------------------------------------------------

local function is_identifier(s)
  return s:match("^[%a_][%w_]*$") ~= nil
end

-- The value a dotted path names, starting from the globals; nil when any step fails. Indexing may
-- load a submodule (cnn.nn), as typing the name would.
local function resolve(path)
  local value = _G
  for part in (path .. "."):gmatch("([^.]*)%.") do
    local kind = type(value)
    if kind ~= "table" and kind ~= "userdata" then return nil end
    local ok, v = pcall(function() return value[part] end)
    if not ok then return nil end
    value = v
  end
  return value
end

-- The value a documented name stands for if it is already loaded (raw reads, nothing runs);
-- "cnn.Tensor:view" is the view field of the table cnn.Tensor.
local function loaded_value(name)
  local value = _G
  for part in (name:gsub(":", ".") .. "."):gmatch("([^.]*)%.") do
    if type(value) ~= "table" then return nil end
    value = rawget(value, part)
  end
  return value
end

local function type_name(value)
  local mt = getmetatable(value)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or nil
end

local function sorted_keys(t, filter)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and (not filter or filter(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

-- Wraps words into lines of at most width columns, each indented.
local function columns(words, indent, width)
  local lines, line = {}, indent
  for _, w in ipairs(words) do
    if #line + #w + 2 > width and line ~= indent then
      lines[#lines + 1] = line
      line = indent
    end
    line = line .. w .. "  "
  end
  if line ~= indent then lines[#lines + 1] = line end
  for i, l in ipairs(lines) do lines[i] = l:gsub("%s+$", "") end
  return table.concat(lines, "\n")
end

local function has_prefix(s, prefix) return s:sub(1, #prefix) == prefix end

-- Texts for "<type><sep><member>" when the member is documented under the value's type, or
-- for any documented type when the value's type has no documentation.
local function member_help(self, value, sep, member)
  local tname = type_name(value)
  if tname then
    local documented = false
    for k in pairs(self) do
      if has_prefix(k, tname .. ".") or has_prefix(k, tname .. ":") then documented = true end
    end
    if documented then return rawget(self, tname .. sep .. member) end
  end
  local found = sorted_keys(self, function(k) return k:sub(-#member - 1) == sep .. member end)
  for i, k in ipairs(found) do found[i] = self[k] end
  if #found > 0 then return table.concat(found, "\n\n") end
end

-- Type and fields of a value that has no text of its own.
local function describe(self, name, value)
  local kind = type(value)
  local tname = type_name(value)
  local head = name .. ": " .. (tname and (kind .. " " .. tname) or kind)
  if kind == "number" or kind == "string" or kind == "boolean" then
    return head .. " = " .. tostring(value)
  end
  local fields = {}
  if kind == "table" then
    for k in next, value do
      if type(k) == "string" and is_identifier(k) then fields[#fields + 1] = k end
    end
  end
  -- members documented for the name or its type (submodules not loaded yet, methods)
  local seen = {}
  for _, f in ipairs(fields) do seen[f] = true end
  for _, prefix in ipairs({ name .. ".", tname and tname .. "." or false, tname and tname .. ":" or false }) do
    if prefix then
      for _, k in ipairs(sorted_keys(self, function(k) return has_prefix(k, prefix) end)) do
        local member = k:sub(#prefix + 1)
        if is_identifier(member) and not seen[member] then
          seen[member] = true
          fields[#fields + 1] = (prefix:sub(-1) == ":" and ":" or "") .. member
        end
      end
    end
  end
  if #fields == 0 then return head end
  table.sort(fields, function(a, b) return a:gsub("^:", "") < b:gsub("^:", "") end)
  return head .. " with fields:\n" .. columns(fields, "  ", 100)
end

local function suggestions(self, name)
  local needle = name:lower():match("[%w_]+$") or name:lower()
  local found = sorted_keys(self, function(k) return k ~= "" and k:lower():find(needle, 1, true) end)
  if #found == 0 then return "" end
  while #found > 12 do table.remove(found) end
  return "\nDocumented names containing '" .. needle .. "':\n" .. columns(found, "  ", 100)
end

-- help(name) -> text for the prompt's ?name.
local function lookup(self, name)
  name = tostring(name or ""):match("^%s*(.-)%s*$")
  local text = rawget(self, name)
  if text and name ~= "" and next(sorted_keys(self, function(k) return has_prefix(k, name .. ".") end)) then
    -- a namespace (cnn, cnn.nn): its text, then everything in it
    local value = resolve(name)
    if type(value) == "table" then return text .. "\n\n" .. describe(self, name, value) end
  end
  if text then return text end

  local object, sep, member = name:match("^(.-)([.:])([%a_][%w_]*)$")
  local value
  if object and object ~= "" then
    local owner = resolve(object)
    if owner ~= nil and type_name(owner) then -- a member of a typed value: x:view, x.grad
      text = member_help(self, owner, sep, member)
      if text then return text end
    end
    if sep == ":" then
      return member_help(self, owner, sep, member) or "no help for '" .. name .. "'" .. suggestions(self, member)
    end
  end
  if name:match("^[%a_][%w_]*[%w_.]*$") then value = resolve(name) end

  -- the same function or table under another name (local Conv = cnn.nn.Conv2d; ?Conv)
  if type(value) == "function" or type(value) == "table" then
    for _, k in ipairs(sorted_keys(self)) do
      if k ~= "" and loaded_value(k) == value then
        return k == name and rawget(self, k) or name .. " is " .. k .. "\n" .. rawget(self, k)
      end
    end
  end
  if value == nil then return "no help for '" .. name .. "'" .. suggestions(self, name) end
  return describe(self, name, value)
end

return setmetatable(help, { __call = lookup })
