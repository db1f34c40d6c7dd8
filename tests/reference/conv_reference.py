"""Reference values for tests/spec/conv_spec.lua and pool_spec.lua, computed once with PyTorch.

Run with `python3 tests/reference/conv_reference.py`; it prints Lua table literals that the specs
hold verbatim. Inputs are small integer ramps so the numbers are easy to read and exact in float32.
"""
import torch
import torch.nn.functional as F


def lua(t):
    """A tensor as a nested Lua table literal."""
    if t.dim() == 0:
        v = float(t)
        return repr(int(v)) if v == int(v) else repr(round(v, 6))
    return "{" + ", ".join(lua(x) for x in t) + "}"


def ramp(*shape):
    n = 1
    for s in shape:
        n *= s
    return torch.arange(n, dtype=torch.float32).reshape(shape)


def show(name, t):
    print(f"-- {name}: shape {tuple(t.shape)}")
    print(f"{name} = {lua(t)}")


x = ramp(1, 2, 5, 5)
w = (ramp(4, 1, 3, 3) % 5) - 2
show("conv_groups_stride_dilation", F.conv2d(x, w, torch.tensor([1., -1., 0.5, 0.]), stride=(2, 1),
                                             padding=(1, 2), dilation=(1, 2), groups=2))
show("conv_same_even_kernel", F.conv2d(ramp(1, 1, 3, 4), torch.ones(1, 1, 2, 2), padding="same"))

xt = ramp(1, 2, 2, 3)
wt = (ramp(2, 1, 3, 3) % 4) - 1
show("conv_transpose_stride2_outpad1",
     F.conv_transpose2d(xt, wt, torch.tensor([0.5]), stride=2, padding=1, output_padding=1))

p = ramp(1, 1, 5, 6)
show("max_pool_k3_s2_p1_ceil", F.max_pool2d(p, 3, stride=2, padding=1, ceil_mode=True))
show("max_pool_k2_s1_d2", F.max_pool2d(p, 2, stride=1, dilation=2))
show("avg_pool_k3_s2_p1_ceil", F.avg_pool2d(p, 3, stride=2, padding=1, ceil_mode=True))
show("avg_pool_k3_s2_p1_ceil_exclude_pad",
     F.avg_pool2d(p, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False))
show("adaptive_avg_5x6_to_3x4", F.adaptive_avg_pool2d(p, (3, 4)))

u = ramp(1, 1, 2, 3)
show("upsample_nearest_2x3_to_3x5", F.interpolate(u, size=(3, 5), mode="nearest"))
show("upsample_bilinear_2x3_to_3x5", F.interpolate(u, size=(3, 5), mode="bilinear", align_corners=False))
show("upsample_bilinear_scale2", F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False))

for mode in ["reflect", "replicate", "circular"]:
    show(f"pad_{mode}", F.pad(u, (2, 1, 1, 1), mode=mode))
show("pad_constant", F.pad(u, (1, 0, 0, 2), value=-1))
