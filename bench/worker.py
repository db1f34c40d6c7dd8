"""worker.py - the PyTorch side of one benchmark line, driven by bench/run.py over stdin/stdout.

Same command line and protocol as bench/worker.lua:
    python3 bench/worker.py model lenet|vgg|resnet18|fashion
    python3 bench/worker.py op conv N C H W O KH KW STRIDE PAD GROUPS   (and maxpool, batchnorm, linear, relu)
answers "ready FLOPS" (forward multiply-adds x 2 per batch, counted over convolutions and linear
layers; 0 for ops without them), then "time train|infer STEPS", "rss", "quit".

PyTorch runs in its best configuration on this kind of machine: torch.set_num_threads(2) (its
OpenMP pool, used by oneDNN and its own kernels) with OPENBLAS_NUM_THREADS=1 set by the driver
(a second thread pool competing for the cores costs it up to 3x); training clears gradients with
set_to_none=True; inference runs under torch.inference_mode().
"""
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def conv_linear_flops(model, x):
    """Forward FLOPs (2 x multiply-adds) of the convolutions and linear layers for input x."""
    total = [0]

    def conv_hook(m, inp, out):
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * out.numel() * k

    def linear_hook(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def model_workload(name):
    spec = getattr(models, name)()
    model = spec["model"]
    torch.manual_seed(1)
    x = torch.randn(spec["batch"], *spec["input"])
    y = torch.tensor([i % spec["classes"] for i in range(spec["batch"])])
    flops = conv_linear_flops(model, x)
    opt = spec["optimizer"](model.parameters())
    criterion = nn.CrossEntropyLoss()

    def train(steps):
        model.train()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()

    def infer(steps):
        model.eval()
        with torch.inference_mode():
            for _ in range(steps):
                model(x)

    return train, infer, flops


def op_workload(kind, v):
    torch.manual_seed(1)
    params = []
    flops = 0
    if kind == "conv":
        n, c, h, w, o, kh, kw, s, p, g = v
        x = torch.randn(n, c, h, w)
        wt, b = torch.randn(o, c // g, kh, kw) * 0.1, torch.randn(o)
        params = [wt, b]

        def forward(t):
            return torch.nn.functional.conv2d(t, wt, b, stride=s, padding=p, groups=g)
    elif kind == "maxpool":
        n, c, h, w, k, s = v
        x = torch.randn(n, c, h, w)

        def forward(t):
            return torch.nn.functional.max_pool2d(t, k, stride=s)
    elif kind == "batchnorm":
        n, c, h, w = v
        x = torch.randn(n, c, h, w)
        rm, rv, gamma, beta = torch.zeros(c), torch.ones(c), torch.ones(c), torch.zeros(c)
        params = [gamma, beta]

        def forward(t):
            return torch.nn.functional.batch_norm(t, rm, rv, gamma, beta, training=True)
    elif kind == "linear":
        n, fin, fout = v
        x = torch.randn(n, fin)
        wt, b = torch.randn(fout, fin) * 0.05, torch.randn(fout)
        params = [wt, b]

        def forward(t):
            return torch.nn.functional.linear(t, wt, b)
    elif kind == "relu":
        n, c, h, w = v
        x = torch.randn(n, c, h, w)

        def forward(t):
            return torch.relu(t)
    else:
        raise SystemExit("unknown op " + kind)
    x.requires_grad_(True)
    for param in params:
        param.requires_grad_(True)
    with torch.no_grad():
        grad_out = torch.randn(forward(x).shape)

    def train(steps):
        for _ in range(steps):
            x.grad = None
            for param in params:
                param.grad = None
            forward(x).backward(grad_out)

    def infer(steps):
        with torch.inference_mode():
            for _ in range(steps):
                forward(x)

    return train, infer, flops


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
    # BENCH_CPU_TIME=1: the process's CPU seconds instead of wall-clock seconds, as in worker.lua
    clock = time.process_time if os.environ.get("BENCH_CPU_TIME") == "1" else time.perf_counter
    if sys.argv[1] == "model":
        train, infer, flops = model_workload(sys.argv[2])
    else:
        train, infer, flops = op_workload(sys.argv[2], [int(a) for a in sys.argv[3:]])
    run = {"train": train, "infer": infer}
    print("ready %d" % flops, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "time":
            start = clock()
            run[words[1]](int(words[2]))
            print("%.6f" % (clock() - start), flush=True)
        elif words[0] == "rss":
            print(peak_rss_kb(), flush=True)
        elif words[0] == "quit":
            break
        else:
            print("error: unknown command " + line.strip(), flush=True)


if __name__ == "__main__":
    main()
