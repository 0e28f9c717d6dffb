"""How models are judged: cross-validation folds (cv.py) and held-out metrics (metrics.py).

`gexp train` uses both; the ensemble model uses them inside each training fold.
"""
