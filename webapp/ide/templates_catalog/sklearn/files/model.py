"""A scikit-learn classifier served by Podium.

load() runs once when the model starts; predict() runs for every request.
Send {"inputs": [[sepal length, sepal width, petal length, petal width], ...]}.
"""

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class Model:
    def load(self):
        # The iris data ships inside scikit-learn, so training needs no download.
        data = load_iris()
        self.species = list(data.target_names)
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        self.model.fit(data.data, data.target)

    def predict(self, body):
        rows = body["inputs"]
        labels = self.model.predict(rows)
        scores = self.model.predict_proba(rows).max(axis=1)
        return {
            "predictions": [self.species[i] for i in labels],
            "confidence": [round(float(s), 4) for s in scores],
        }
