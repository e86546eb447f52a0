"""The loan team's own model: scaled numbers and one-hot categories into a logistic regression.

driftloop calls ``make_pipeline(**training.estimator_params, numeric=..., categorical=...)`` for an
unfitted scikit-learn pipeline that takes the raw feature columns; it fits, scores, registers and
compares whatever comes back the same way as its default model.
"""

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def make_pipeline(C: float = 1.0, numeric=(), categorical=()) -> Pipeline:
    encode = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
        ("numbers", StandardScaler(), list(numeric)),
    ])
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=C, max_iter=1000))])
