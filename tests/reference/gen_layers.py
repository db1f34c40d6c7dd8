#!/usr/bin/env python3
"""Reference values for tests/spec/layers_spec.lua and tests/spec/loss_spec.lua, computed with
PyTorch. Run once with `python3 tests/reference/gen_layers.py`; it prints two Lua blocks (one per
spec) that are pasted into the specs, so the specs themselves need no Python.

Inputs are small fixed tensors written out below; class labels are printed 1-based (Lua's
convention) while PyTorch receives them 0-based."""
import math

import torch

torch.set_default_dtype(torch.float64)  # reference values in double, compared to float32 results


def lua(v):
    """A Lua literal for nested lists / tensors / numbers / dicts."""
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={lua(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(lua(x) for x in v) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "0/0"
        return f"{v:.9g}"
    return str(v)


def fixed(*shape, scale=1.0, phase=0.0):
    """Deterministic values sin(1.3 i + phase) * scale, reshaped."""
    n = math.prod(shape)
    return torch.tensor([math.sin(1.3 * i + phase) * scale for i in range(n)]).reshape(shape)


def emit(name, fields):
    print(f"  {name} = {lua(fields)},")


def layers():
    print("local REF = {")
    x = fixed(2, 3, scale=2.0)
    emit("softmax_2x3", {"x": x, "dim2": torch.softmax(x, 1), "dim1": torch.softmax(x, 0),
                         "log_dim2": torch.log_softmax(x, 1), "log_dim1": torch.log_softmax(x, 0)})
    x = fixed(2, 3, 2, 2, scale=3.0, phase=0.5)
    emit("softmax_4d", {"x": x, "dim2": torch.softmax(x, 1), "log_dim3": torch.log_softmax(x, 2)})

    # batch norm: one training step then eval, (N, C, H, W) with weight and bias
    x = fixed(3, 2, 2, 2, scale=2.0, phase=0.2) + torch.tensor([1.0, -0.5]).view(1, 2, 1, 1)
    w = torch.tensor([1.5, -0.7], requires_grad=True)
    b = torch.tensor([0.1, 0.3], requires_grad=True)
    rm, rv = torch.zeros(2), torch.ones(2)
    xg = x.clone().requires_grad_()
    y = torch.nn.functional.batch_norm(xg, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)
    upstream = fixed(3, 2, 2, 2, phase=1.0)
    (y * upstream).sum().backward()
    y_eval = torch.nn.functional.batch_norm(x, rm, rv, w.detach(), b.detach(), training=False, eps=1e-5)
    emit("batch_norm_4d", {"x": x, "weight": w.detach(), "bias": b.detach(), "upstream": upstream,
                           "y_train": y.detach(), "running_mean": rm, "running_var": rv,
                           "dx": xg.grad, "dweight": w.grad, "dbias": b.grad, "y_eval": y_eval})
    # (N, C) without weight/bias, three training steps with momentum 0.2
    x = fixed(5, 3, scale=1.5, phase=0.7)
    rm, rv = torch.zeros(3), torch.ones(3)
    for step in range(3):
        y = torch.nn.functional.batch_norm(x * (step + 1), rm, rv, training=True, momentum=0.2, eps=1e-5)
    emit("batch_norm_2d", {"x": x, "y_step3": y, "running_mean": rm, "running_var": rv})
    print("}")


def losses():
    print("local REF = {")
    F = torch.nn.functional
    logits = fixed(4, 5, scale=3.0, phase=0.3)
    targets = torch.tensor([2, 0, 4, 1])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0])
    ce = {"logits": logits, "labels": targets + 1, "weight": weight}
    ce["mean"] = F.cross_entropy(logits, targets)
    ce["sum"] = F.cross_entropy(logits, targets, reduction="sum")
    ce["none"] = F.cross_entropy(logits, targets, reduction="none")
    ce["smooth"] = F.cross_entropy(logits, targets, label_smoothing=0.2)
    ce["weighted"] = F.cross_entropy(logits, targets, weight=weight)
    ce["ignore_label"] = 3  # 1-based label 3 = class 2
    ce["ignored"] = F.cross_entropy(logits, targets, ignore_index=2)
    ce["all_options"] = F.cross_entropy(logits, targets, weight=weight, ignore_index=2, label_smoothing=0.1)
    ce["all_options_none"] = F.cross_entropy(logits, targets, weight=weight, ignore_index=2,
                                             label_smoothing=0.1, reduction="none")
    lg = logits.clone().requires_grad_()
    F.cross_entropy(lg, targets, weight=weight, ignore_index=2, label_smoothing=0.1).backward()
    ce["all_options_grad"] = lg.grad
    emit("cross_entropy", ce)

    logits = fixed(2, 3, 2, 2, scale=2.0, phase=1.1)
    targets = torch.tensor([[[0, 2], [1, 1]], [[2, 0], [0, 1]]])
    emit("cross_entropy_4d", {"logits": logits, "labels": targets + 1,
                              "mean": F.cross_entropy(logits, targets),
                              "none": F.cross_entropy(logits, targets, reduction="none"),
                              "smooth_sum": F.cross_entropy(logits, targets, label_smoothing=0.3,
                                                            reduction="sum")})

    logp = torch.log_softmax(fixed(3, 4, phase=2.0), 1)
    targets = torch.tensor([3, 0, 1])
    emit("nll", {"logp": logp, "labels": targets + 1, "mean": F.nll_loss(logp, targets),
                 "weighted": F.nll_loss(logp, targets, weight=torch.tensor([0.5, 1.0, 2.0, 4.0]))})

    x = fixed(2, 3, phase=0.4)
    t = fixed(2, 3, phase=2.4, scale=0.8)
    emit("regression", {"x": x, "t": t, "mse": F.mse_loss(x, t), "mse_sum": F.mse_loss(x, t, reduction="sum"),
                        "l1": F.l1_loss(x, t), "l1_none": F.l1_loss(x, t, reduction="none")})

    p = (fixed(2, 3, phase=0.9) + 1) / 2.2 + 0.02
    t = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.3, 1.0]])
    w = torch.tensor([1.0, 2.0, 0.5])
    emit("bce", {"p": p, "t": t, "weight": w, "mean": F.binary_cross_entropy(p, t),
                 "weighted_sum": F.binary_cross_entropy(p, t, weight=w.expand(2, 3), reduction="sum"),
                 "at_edges": F.binary_cross_entropy(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))})

    x = fixed(2, 3, scale=4.0, phase=0.1)
    pw = torch.tensor([2.0, 0.5, 1.0])
    emit("bce_logits", {"x": x, "t": t, "weight": w, "pos_weight": pw,
                        "mean": F.binary_cross_entropy_with_logits(x, t),
                        "full": F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw),
                        "full_none": F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                                                        reduction="none"),
                        "huge": F.binary_cross_entropy_with_logits(torch.tensor([1000.0, -1000.0]),
                                                                   torch.tensor([0.0, 1.0]))})
    print("}")


if __name__ == "__main__":
    print("-- layers_spec.lua")
    layers()
    print("-- loss_spec.lua")
    losses()
