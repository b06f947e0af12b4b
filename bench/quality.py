"""All classification metrics of one window, beside scikit-learn's functions and Evidently.

    .venv/bin/python bench/quality.py            # 100,000 binary rows and 100,000 over 10 classes
    .venv/bin/python bench/quality.py --rows 20000 --repeat 3

inferwatch computes accuracy, precision/recall/F1 (per class and averaged), ROC AUC, PR AUC,
log loss, Brier, ECE, the confusion matrix and class balances together. scikit-learn is
called once per metric for the same set (ECE has no scikit-learn function: it is left out
of that side, which flatters scikit-learn). Evidently 0.7's classification preset runs in
its own virtualenv (bench/.venv-evidently, `pip install "evidently==0.7.*" "pandas<3"
scikit-learn`), on the same data written to a temporary file, timing only the report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as sk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.quality.classification import classification

ROOT = Path(__file__).resolve().parent
EVIDENTLY = ROOT / ".venv-evidently" / "bin" / "python"

EVIDENTLY_SCRIPT = r"""
import sys, time, json, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from evidently import (Report, Dataset, DataDefinition, BinaryClassification,
                       MulticlassClassification)
from evidently.presets import ClassificationPreset
data = np.load(sys.argv[1])
y, yp, proba = data["y"], data["yp"], data["proba"]
k = proba.shape[1]
frame = pd.DataFrame({"target": y.astype(str), "prediction": yp.astype(str)})
if k == 2:
    frame["prediction_proba"] = proba[:, 1]
    definition = DataDefinition(classification=[BinaryClassification(
        target="target", prediction_labels="prediction", prediction_probas="prediction_proba",
        pos_label="1")])
else:
    for c in range(k):
        frame[str(c)] = proba[:, c]
    definition = DataDefinition(classification=[MulticlassClassification(
        target="target", prediction_labels="prediction",
        prediction_probas=[str(c) for c in range(k)])])
dataset = Dataset.from_pandas(frame, data_definition=definition)
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    Report([ClassificationPreset()]).run(dataset, None)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def data(rows: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (rows, k))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (proba.cumsum(axis=1) > rng.random(rows)[:, None]).argmax(axis=1)
    return y, proba.argmax(axis=1), proba


def ours(y: np.ndarray, yp: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    k = proba.shape[1]
    return classification(y, yp, proba, tuple(str(c) for c in range(k)), 1 if k == 2 else -1)


def sklearn_set(y: np.ndarray, yp: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    k = proba.shape[1]
    out: dict[str, Any] = {"accuracy": sk.accuracy_score(y, yp),
                           "confusion": sk.confusion_matrix(y, yp)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if k == 2:
            for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score),
                             ("f1", sk.f1_score)):
                out[name] = fn(y, yp, zero_division=0)
            out["roc_auc"] = sk.roc_auc_score(y, proba[:, 1])
            out["pr_auc"] = sk.average_precision_score(y, proba[:, 1])
            out["brier"] = sk.brier_score_loss(y, proba[:, 1])
        else:
            for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score),
                             ("f1", sk.f1_score)):
                for average in ("macro", "micro", "weighted", None):
                    out[f"{name}_{average}"] = fn(y, yp, average=average, zero_division=0)
            out["roc_auc"] = sk.roc_auc_score(y, proba, multi_class="ovr")
            out["pr_auc"] = sk.average_precision_score(y, proba)
            out["brier"] = sk.brier_score_loss(y, proba)
        out["log_loss"] = sk.log_loss(y, proba)
    return out


def timed(fn: Any, *args: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - began)
    return times


def evidently(y: np.ndarray, yp: np.ndarray, proba: np.ndarray, repeat: int) -> list[float]:
    if not EVIDENTLY.exists():
        return []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "window.npz"
        np.savez(path, y=y, yp=yp, proba=proba)
        done = subprocess.run([str(EVIDENTLY), "-c", EVIDENTLY_SCRIPT, str(path), str(repeat)],
                              capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return []
    times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| window | inferwatch ms | scikit-learn ms | Evidently ms | vs sklearn | "
          "vs Evidently |\n|---|---|---|---|---|---|")
    for k in (2, 10):
        y, yp, proba = data(args.rows, k)
        mine = statistics.median(timed(ours, y, yp, proba, repeat=args.repeat))
        theirs = statistics.median(timed(sklearn_set, y, yp, proba, repeat=args.repeat))
        peer = evidently(y, yp, proba, max(1, args.repeat // 2))
        ev = statistics.median(peer) if peer else float("nan")
        print(f"| {args.rows:,} rows, {k} classes | {mine * 1000:.1f} | {theirs * 1000:.1f} | "
              f"{ev * 1000:.0f} | {theirs / mine:.1f}x | {ev / mine:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
