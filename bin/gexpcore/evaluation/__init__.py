"""How models are judged: cross-validation folds (cv.py), one model's cross-validation
(crossval.py), held-out metrics (metrics.py) and the default model's comparison (default.py).

`gexp train` uses them for every model; the ensemble uses folds and metrics inside each
training fold.
"""
