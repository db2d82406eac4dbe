"""A custom model as a user writes it in a module file: load() reads a file it names, predict() takes JSON."""

from pathlib import Path

import numpy as np

from .sample_helpers import tokenize

THRESHOLD = 1


class Sentiment:
    files = ["data/vocab.txt"]

    def load(self):
        self.words = set(Path("data/vocab.txt").read_text().split())

    def predict(self, body):
        tokens = tokenize(body["text"])
        hits = np.array([token in self.words for token in tokens], dtype=int)
        return {"positive": bool(hits.sum() >= THRESHOLD), "hits": int(hits.sum())}


class NeedsArguments:
    def __init__(self, threshold):
        self.threshold = threshold

    def load(self):
        pass

    def predict(self, body):
        return body
