"""A small PyTorch network served by Podium.

load() builds the network once (load trained weights here, e.g. from a file next
to this one with torch.load); predict() scores a batch.
Send {"inputs": [[4 numbers], ...]}.
"""

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, features=4, hidden=16, classes=3):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.layers(x).softmax(dim=-1)


class Model:
    def load(self):
        torch.manual_seed(0)  # the same weights every time, until you load trained ones
        self.net = TinyNet().eval()

    def predict(self, body):
        inputs = torch.tensor(body["inputs"], dtype=torch.float32)
        with torch.no_grad():
            probabilities = self.net(inputs)
        return {
            "predictions": probabilities.argmax(dim=-1).tolist(),
            "probabilities": probabilities.round(decimals=4).tolist(),
        }
