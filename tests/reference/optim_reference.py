#!/usr/bin/python3
"""Reference trajectories of PyTorch's optimizers, learning-rate schedules and gradient clipping,
written as a Lua table literal to tests/reference/optim_reference.lua for tests/spec/optim_spec.lua.

The problem is small and fixed so that cnnlua can rebuild it exactly: a linear map y = x @ w + b with
w (3, 4) and b (4), inputs x (5, 3), targets t (5, 4) and the loss mean((y - t)^2). Each optimizer
configuration runs 5 steps from the same initial w and b; the file records the loss before each step
and w and b after it.

Run: /usr/bin/python3 tests/reference/optim_reference.py   (from the repository root)
"""
import math
import os

import torch

W0 = [[0.5, -0.3, 0.8, 0.1],
      [-0.6, 0.2, 0.4, -0.9],
      [0.3, 0.7, -0.2, 0.05]]
B0 = [0.1, -0.2, 0.05, 0.3]
X = [[1.0, 2.0, -1.0],
     [0.5, -1.5, 2.0],
     [-2.0, 0.3, 0.7],
     [1.2, 1.1, -0.4],
     [0.0, -0.8, 1.5]]
T = [[1.0, 0.0, -1.0, 2.0],
     [0.5, 1.5, 0.0, -0.5],
     [-1.0, 0.2, 0.8, 0.0],
     [2.0, -1.0, 0.3, 1.0],
     [0.0, 0.5, -0.5, 1.5]]
STEPS = 5

# name -> (optimizer, options, parameter groups or None). Groups name their parameters ("w", "b");
# options use cnnlua's spelling, which is PyTorch's with betas as a list.
OPTIMIZERS = {
    "sgd_plain": ("SGD", {"lr": 0.1}, None),
    "sgd_momentum_dampening": ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}, None),
    "sgd_nesterov_weight_decay": ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}, None),
    "sgd_maximize": ("SGD", {"lr": 0.01, "momentum": 0.5, "maximize": True}, None),
    "adam": ("Adam", {"lr": 0.05}, None),
    "adam_amsgrad": ("Adam", {"lr": 0.05, "betas": [0.8, 0.9], "amsgrad": True}, None),
    "adam_weight_decay": ("Adam", {"lr": 0.05, "weight_decay": 0.1}, None),
    "adamw": ("AdamW", {"lr": 0.05, "weight_decay": 0.1}, None),
    "adamw_amsgrad_maximize": ("AdamW", {"lr": 0.02, "amsgrad": True, "maximize": True, "eps": 1e-3}, None),
    "rmsprop": ("RMSprop", {"lr": 0.01}, None),
    "rmsprop_centered_momentum": ("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.9}, None),
    "rmsprop_weight_decay": ("RMSprop", {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.5}, None),
    "sgd_groups": ("SGD", {"lr": 0.01, "momentum": 0.9},
                   [{"params": ["w"], "lr": 0.1}, {"params": ["b"], "momentum": 0.5}]),
    "adam_groups": ("Adam", {"lr": 0.01},
                    [{"params": ["w"], "lr": 0.05, "amsgrad": True}, {"params": ["b"], "betas": [0.5, 0.6]}]),
}

# name -> (optimizer, options, group lrs, schedule, schedule options); 12 steps each.
SCHEDULE_STEPS = 12
SCHEDULES = {
    "step": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "step", {"step_size": 3, "gamma": 0.5}),
    "multi_step": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "multi_step", {"milestones": [2, 5, 9], "gamma": 0.1}),
    "exponential": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "exponential", {"gamma": 0.9}),
    "cosine": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "cosine", {"t_max": 10, "eta_min": 0.001}),
    "one_cycle": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "one_cycle", {"max_lr": 0.5, "total_steps": 12}),
    "one_cycle_linear": ("Adam", {}, [0.1, 0.02], "one_cycle",
                         {"max_lr": [0.4, 0.2], "total_steps": 20, "pct_start": 0.25, "anneal": "linear",
                          "div_factor": 10.0, "final_div_factor": 100.0}),
    "linear_warmup": ("SGD", {"momentum": 0.9}, [0.1, 0.02], "linear_warmup",
                      {"warmup_steps": 4, "start_factor": 0.25}),
}

# (max_norm, norm_type) applied to the gradients at the initial point.
CLIPS = [(0.5, 2.0), (100.0, 2.0), (0.1, math.inf), (1.0, 1.0), (0.3, 3.0)]


def problem():
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    x = torch.tensor(X)
    t = torch.tensor(T)
    return w, b, lambda: ((x @ w + b - t) ** 2).mean()


def make_optimizer(kind, options, params):
    kw = dict(options)
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    return getattr(torch.optim, kind)(params, **kw)


def run_optimizer(kind, options, groups):
    w, b, loss_fn = problem()
    named = {"w": w, "b": b}
    if groups is None:
        params = [w, b]
    else:
        params = []
        for g in groups:
            g = dict(g)
            g["params"] = [named[n] for n in g["params"]]
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
            params.append(g)
    opt = make_optimizer(kind, options, params)
    steps = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        steps.append({"loss": loss.item(), "w": w.detach().tolist(), "b": b.detach().tolist()})
    return steps


def run_schedule(kind, options, group_lrs, schedule, sched_options):
    params = [torch.zeros(2, requires_grad=True) for _ in group_lrs]
    opt = make_optimizer(kind, dict(options, lr=group_lrs[0]),
                         [{"params": [p], "lr": lr} for p, lr in zip(params, group_lrs)])
    S = torch.optim.lr_scheduler
    o = sched_options
    if schedule == "step":
        sched = S.StepLR(opt, step_size=o["step_size"], gamma=o["gamma"])
    elif schedule == "multi_step":
        sched = S.MultiStepLR(opt, milestones=o["milestones"], gamma=o["gamma"])
    elif schedule == "exponential":
        sched = S.ExponentialLR(opt, gamma=o["gamma"])
    elif schedule == "cosine":
        sched = S.CosineAnnealingLR(opt, T_max=o["t_max"], eta_min=o["eta_min"])
    elif schedule == "one_cycle":
        sched = S.OneCycleLR(opt, max_lr=o["max_lr"], total_steps=o["total_steps"],
                             pct_start=o.get("pct_start", 0.3), anneal_strategy=o.get("anneal", "cos"),
                             div_factor=o.get("div_factor", 25.0),
                             final_div_factor=o.get("final_div_factor", 1e4))
    elif schedule == "linear_warmup":
        sched = S.LinearLR(opt, start_factor=o["start_factor"], total_iters=o["warmup_steps"])
    else:
        raise ValueError(schedule)

    def momentum_of(group):
        return group["betas"][0] if "betas" in group else group["momentum"]

    lrs = [[g["lr"] for g in opt.param_groups]]
    momenta = [[momentum_of(g) for g in opt.param_groups]]
    for _ in range(SCHEDULE_STEPS):
        opt.step()  # no gradients: nothing moves, but the scheduler sees the usual order of calls
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        momenta.append([momentum_of(g) for g in opt.param_groups])
    return lrs, momenta


def run_clips():
    w, b, loss_fn = problem()
    loss_fn().backward()
    grads = {"w": w.grad.tolist(), "b": b.grad.tolist()}
    results = []
    for max_norm, norm_type in CLIPS:
        w.grad = torch.tensor(grads["w"])
        b.grad = torch.tensor(grads["b"])
        total = torch.nn.utils.clip_grad_norm_([w, b], max_norm, norm_type)
        results.append({"max_norm": max_norm, "norm_type": "inf" if math.isinf(norm_type) else norm_type,
                        "total_norm": total.item(), "w": w.grad.tolist(), "b": b.grad.tolist()})
    return grads, results


def lua(value, indent=""):
    """A Lua literal for nested dicts, lists, numbers, booleans and strings (keys sorted)."""
    inner = indent + "  "
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isinf(value):
            return "math.huge" if value > 0 else "-math.huge"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float)) for v in value):
            return "{" + ", ".join(lua(v) for v in value) + "}"
        return "{\n" + "".join(inner + lua(v, inner) + ",\n" for v in value) + indent + "}"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{\n" + "".join(inner + k + " = " + lua(v, inner) + ",\n" for k, v in items) + indent + "}"
    raise TypeError(type(value))


def main():
    torch.set_default_dtype(torch.float32)
    optimizers = {}
    for name, (kind, options, groups) in OPTIMIZERS.items():
        entry = {"optimizer": kind, "options": options, "steps": run_optimizer(kind, options, groups)}
        if groups is not None:
            entry["groups"] = groups
        optimizers[name] = entry
    schedules = {}
    for name, (kind, options, group_lrs, schedule, sched_options) in SCHEDULES.items():
        lrs, momenta = run_schedule(kind, options, group_lrs, schedule, sched_options)
        schedules[name] = {"optimizer": kind, "options": options, "group_lrs": group_lrs,
                           "schedule": schedule, "schedule_options": sched_options,
                           "lrs": lrs, "momenta": momenta}
    grads, clips = run_clips()
    data = {
        "problem": {"w": W0, "b": B0, "x": X, "t": T, "steps": STEPS, "grads": grads},
        "optimizers": optimizers,
        "schedules": schedules,
        "clip_grad_norm": clips,
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_reference.lua")
    with open(out, "w") as f:
        f.write("-- Generated by tests/reference/optim_reference.py with PyTorch %s; do not edit.\n"
                % torch.__version__)
        f.write("return " + lua(data) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
