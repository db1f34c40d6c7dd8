"""models.py - the networks of the benchmark in torch.nn, layer for layer the ones of bench/models.lua.

Each function returns {"model", "optimizer" (a function of the parameters), "input" (C, H, W),
"batch", "classes"}.
"""
import torch
import torch.nn as nn


def lenet():
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return {"model": model, "input": (1, 28, 28), "batch": 64, "classes": 10,
            "optimizer": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)}


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def vgg():
    layers, cin = [], 3
    for c in (32, 64, 128):
        layers += conv_bn_relu(cin, c) + conv_bn_relu(c, c) + [nn.MaxPool2d(2)]
        cin = c
    layers += [nn.Flatten(), nn.Dropout(0.5), nn.Linear(128 * 4 * 4, 10)]
    return {"model": nn.Sequential(*layers), "input": (3, 32, 32), "batch": 128, "classes": 10,
            "optimizer": lambda p: torch.optim.Adam(p, lr=1e-3)}


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return torch.relu(y + shortcut)


def resnet18():
    layers = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, stride=2, padding=1)]
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        layers += [BasicBlock(cin, c, 1 if stage == 0 else 2), BasicBlock(c, c, 1)]
        cin = c
    layers += [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10)]
    return {"model": nn.Sequential(*layers), "input": (3, 32, 32), "batch": 32, "classes": 10,
            "optimizer": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)}


def fashion():
    layers = conv_bn_relu(1, 16) + conv_bn_relu(16, 16) + [nn.MaxPool2d(2)]
    layers += conv_bn_relu(16, 32) + conv_bn_relu(32, 32) + [nn.MaxPool2d(2)]
    layers += [nn.Dropout(0.1), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
               nn.Linear(128, 10)]
    return {"model": nn.Sequential(*layers), "input": (1, 28, 28), "batch": 128, "classes": 10,
            "optimizer": lambda p: torch.optim.Adam(p, lr=4e-3)}
