"""Tiny torch modules: one TorchScript compiles, one it rejects (a generator expression)."""

import torch
from torch import nn


def act(x):
    return torch.tanh(x) * 2


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class BranchNet(nn.Module):
    def __init__(self, hidden, branches=2):
        super().__init__()
        self.hidden = hidden
        self.branches = branches
        self.heads = nn.ModuleList(nn.Linear(4, hidden) for _ in range(branches))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(act(sum(head(x) for head in self.heads)))


class Unrebuildable(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.layer = nn.Linear(4, width)

    def forward(self, x):
        return sum(v for v in [self.layer(x)])
