"""A model is any Python class with load() and predict().

load() runs once when the model starts; predict(body) gets the request's JSON
and returns JSON. Add packages to requirements.txt.
"""

import json


class Model:
    def load(self):
        with open("words.json") as handle:  # files of the model are read by relative path
            words = json.load(handle)
        self.positive = set(words["positive"])
        self.negative = set(words["negative"])

    def predict(self, body):
        text = body["text"]
        tokens = [t.strip(".,!?;:").lower() for t in text.split()]
        score = sum(t in self.positive for t in tokens) - sum(t in self.negative for t in tokens)
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return {"label": label, "score": score}
