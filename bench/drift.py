"""Drift detection beside its peers, same data, same run: accuracy and cost per check.

    .venv/bin/python bench/drift.py                    # 20 windows per scenario, peers 10
    .venv/bin/python bench/drift.py --windows 10 --peer-windows 4 --peers scipy

Data as issue #7 states it: 25 columns (20 numeric N(0, 1), 5 categorical over 10
categories), a 100,000-row reference; windows of 10,000 rows (and 100,000 for the
no-drift and minimum-effect scenarios). A window counts as flagged when any column (or, for
inferwatch, the multivariate check) is flagged. Each tool runs with its defaults; the
reference is prepared once where the tool allows it. Peers run in their own virtualenvs
under bench/ (see bench/README.md): Evidently 0.7 (DataDriftPreset), alibi-detect 0.13
(TabularDrift), NannyML 0.13 (UnivariateDriftCalculator), and scipy `ks_2samp` per column
(chi-square for the categorical ones) without a multiple-testing correction.
One core: every process is pinned with taskset to CPU 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.window import Coded, Window
from plugins.drift.config import DriftConfig
from plugins.drift.profile import build
from plugins.drift.sequential import Cusum, calibrate

ROOT = Path(__file__).resolve().parent
CATS = np.array([f"k{i}" for i in range(10)], dtype=object)
SCENARIOS = {  # name: (rows, change)
    "no drift, 10k": (10_000, {}),
    "no drift, 100k": (100_000, {}),
    "mean +0.1 sd": (10_000, {"shift": 0.1}),
    "variance x1.2": (10_000, {"var": 1.2}),
    "category +5 pp": (10_000, {"share": 0.05}),
    "correlation 0 -> 0.3": (10_000, {"corr": 0.3}),
    "mean +0.03 sd, 100k": (100_000, {"shift": 0.03}),
}
PEERS = {"evidently": ".venv-evidently", "alibi": ".venv-alibi", "nannyml": ".venv-nannyml",
         "scipy": None}


def frame(rng: np.random.Generator, n: int, *, shift: float = 0.0, var: float = 1.0,
          share: float = 0.0, corr: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    numeric = rng.normal(0, 1, (n, 20))
    numeric[:, 0] = numeric[:, 0] * np.sqrt(var) + shift
    if corr:
        numeric[:, 2] = corr * numeric[:, 1] + np.sqrt(1 - corr ** 2) * numeric[:, 2]
    codes = rng.integers(0, 10, (n, 5))
    p = np.full(10, 0.1)
    p[0], p[1] = p[0] + share, p[1] - share
    codes[:, 0] = rng.choice(10, n, p=p)
    return numeric, codes


def columns(numeric: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    out = {f"x{i}": np.ascontiguousarray(numeric[:, i]) for i in range(20)}
    out.update({f"c{j}": CATS[codes[:, j]] for j in range(5)})
    return out


def window(cols: dict[str, np.ndarray]) -> Window:
    """As the agent's window stage hands it over: categorical columns as codes too (made
    once per pane when it closes, in a worker thread; `codes_ms` reports that cost)."""
    n = len(cols["x0"])
    coded = {name: Coded.of(v) for name, v in cols.items() if v.dtype == object}
    return Window(model="m", model_version="1", spec="bench", start=0, end=1, task="regression",
                  n=n, y_pred=np.zeros(n), y_true=np.full(n, np.nan), features=cols,
                  coded=coded)


def ours(reference: tuple[np.ndarray, np.ndarray], data: dict[str, list[Any]]
         ) -> dict[str, Any]:
    from agent.context import PluginContext  # noqa: PLC0415
    from agent.metrics import PluginMetrics  # noqa: PLC0415
    from plugins.drift.monitor import DriftMonitor  # noqa: PLC0415

    ref_cols = columns(*reference)
    spent = []
    for _ in range(3):  # the median of three: the first also pays for imports
        began = time.perf_counter()
        profile = build(ref_cols, model="m", model_version="1")
        spent.append(time.perf_counter() - began)
    prep_ms = statistics.median(spent) * 1000
    size = len(__import__("msgspec").json.encode(profile))
    config = DriftConfig()
    ctx = PluginContext(plugin="drift", config=config, host_id="bench",
                        state_root=Path(tempfile.mkdtemp()), metrics=PluginMetrics("d", 10),
                        emitter=lambda _: True)
    monitor = DriftMonitor(config, ctx)
    monitor.set_reference(profile)
    out: dict[str, Any] = {"prepare_ms": prep_ms, "reference_bytes": size}
    monitor.compute(window(next(iter(data.values()))[0]))  # warm-up: stacks the reference once
    monitor.cusums.clear()
    monitor.first_spec.clear()
    for name, windows in data.items():
        flags, times, peak, with_cusum, coding = 0, [], 0, [], []
        for cols in windows:
            began = time.perf_counter()
            built = window(cols)
            coding.append(time.perf_counter() - began)
            monitor.config.sequential = False  # the window check alone, as the peers do
            began = time.perf_counter()
            found = monitor.compute(built)
            times.append(time.perf_counter() - began)
            assert found is not None
            flags += bool(found["drifted"])
            monitor.config.sequential = True  # and with CUSUM over every numeric stream
            began = time.perf_counter()
            monitor.compute(built)
            with_cusum.append(time.perf_counter() - began)
            monitor.cusums.clear()
            monitor.first_spec.clear()
        built = window(windows[0])
        tracemalloc.start()  # a separate pass: tracing slows every allocation
        monitor.compute(built)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"flagged": flags / len(windows), "ms": statistics.median(times) * 1000,
                     "with_sequential_ms": statistics.median(with_cusum) * 1000,
                     "peak_mib": peak / 2**20, "codes_ms": statistics.median(coding) * 1000}
    return out


def sequential_rate() -> dict[str, float]:
    k, h = calibrate(1_000_000, 0.1)
    rng = np.random.default_rng(3)
    cusum, total, spent = Cusum(k, h), 0, 0.0
    for _ in range(20):
        z = rng.normal(size=5_000_000)
        began = time.perf_counter()
        cusum.update(z)
        spent += time.perf_counter() - began
        total += len(z)
    delays = {}
    for shift in (0.1, 0.25):
        found = []
        for _ in range(500):
            fired = Cusum(k, h).update(rng.normal(shift, 1, 10_000))
            found.append(fired[0] + 1 if fired else 10_000)
        delays[shift] = float(np.mean(found))
    return {"samples_per_s": total / spent, "false_alarms_per_10k": cusum.alarms * 1e4 / total,
            "delay_0.1": delays[0.1], "delay_0.25": delays[0.25]}


PEER_SCRIPT = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
import numpy as np
peer, folder = sys.argv[1], sys.argv[2]
ref = np.load(f"{folder}/reference.npz")
scenarios = json.load(open(f"{folder}/scenarios.json"))
names = [f"x{i}" for i in range(20)] + [f"c{j}" for j in range(5)]

def frame(numeric, codes):
    import pandas as pd
    df = pd.DataFrame(numeric, columns=names[:20])
    for j in range(5):
        df[f"c{j}"] = pd.Categorical([f"k{v}" for v in codes[:, j]])
    return df

if peer == "scipy":
    from scipy import stats
    def prepare():
        return ref
    def check(state, numeric, codes):
        for i in range(20):
            if stats.ks_2samp(state["numeric"][:, i], numeric[:, i]).pvalue < 0.05:
                return True
        for j in range(5):
            a = np.bincount(state["codes"][:, j], minlength=10)
            b = np.bincount(codes[:, j], minlength=10)
            if stats.chi2_contingency(np.vstack([a, b]))[1] < 0.05:
                return True
        return False
elif peer == "alibi":
    from alibi_detect.cd import TabularDrift
    def prepare():
        x = np.hstack([ref["numeric"], ref["codes"]]).astype(np.float32)
        return TabularDrift(x, p_val=0.05, categories_per_feature={20 + j: None for j in range(5)})
    def check(state, numeric, codes):
        x = np.hstack([numeric, codes]).astype(np.float32)
        return bool(state.predict(x)["data"]["is_drift"])
elif peer == "evidently":
    from evidently import Report, Dataset, DataDefinition
    from evidently.presets import DataDriftPreset
    definition = DataDefinition(numerical_columns=names[:20], categorical_columns=names[20:])
    def prepare():
        return Dataset.from_pandas(frame(ref["numeric"], ref["codes"]), data_definition=definition)
    def check(state, numeric, codes):
        current = Dataset.from_pandas(frame(numeric, codes), data_definition=definition)
        snap = Report([DataDriftPreset()]).run(current, state)
        for metric in snap.dict()["metrics"]:
            value = metric.get("value")
            if isinstance(value, dict) and "count" in value:
                return value["count"] > 0
        raise RuntimeError("no drifted-columns count in the Evidently report")
elif peer == "nannyml":
    import nannyml as nml
    import pandas as pd
    def prepare():
        calc = nml.UnivariateDriftCalculator(column_names=names, chunk_number=1)
        calc.fit(frame(ref["numeric"], ref["codes"]))
        return calc
    def check(state, numeric, codes):
        res = state.calculate(frame(numeric, codes)).filter(period="analysis").to_df()
        alerts = [c for c in res.columns if c[-1] == "alert"]
        return bool(res[alerts].to_numpy().any())

t = time.perf_counter(); state = prepare(); prep = time.perf_counter() - t
out = {"prepare_ms": prep * 1000}
for name, count in scenarios.items():
    data = np.load(f"{folder}/{name}.npz")
    flags, times = 0, []
    for w in range(count):
        t = time.perf_counter()
        flags += check(state, data["numeric"][w], data["codes"][w])
        times.append(time.perf_counter() - t)
    out[name] = {"flagged": flags / count, "ms": float(np.median(times)) * 1000}
print(json.dumps(out))
"""


def peer(name: str, folder: Path, timeout: float) -> dict[str, Any] | None:
    venv = PEERS[name]
    python = sys.executable if venv is None else str(ROOT / venv / "bin" / "python")
    if not Path(python).exists():
        return None
    done = subprocess.run(["taskset", "-c", "0", python, "-c", PEER_SCRIPT, name, str(folder)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"})
    if done.returncode:
        print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--peer-windows", type=int, default=10)
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    parser.add_argument("--peer-timeout", type=float, default=1800)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    rng = np.random.default_rng(2027)
    reference = frame(rng, 100_000)
    data: dict[str, list[Any]] = {}
    with tempfile.TemporaryDirectory(prefix="iw-drift-bench-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "reference.npz", numeric=reference[0], codes=reference[1])
        counts = {}
        for name, (rows, change) in SCENARIOS.items():
            windows = [frame(rng, rows, **change) for _ in range(args.windows)]
            data[name] = [columns(*w) for w in windows]
            count = min(args.peer_windows, args.windows) if rows == 10_000 else max(
                2, min(args.peer_windows, args.windows) // 2)
            counts[name] = count
            np.savez(folder / f"{name}.npz", numeric=np.stack([w[0] for w in windows[:count]]),
                     codes=np.stack([w[1] for w in windows[:count]]))
        (folder / "scenarios.json").write_text(json.dumps(counts))
        results = {"inferwatch": ours(reference, data)}
        for name in args.peers:
            found = peer(name, folder, args.peer_timeout)
            if found is not None:
                results[name] = found
    print(json.dumps(results, indent=1), file=sys.stderr)
    tools = list(results)
    print("| scenario | " + " | ".join(tools) + " |\n|---|" + "---|" * len(tools))
    for name in SCENARIOS:
        cells = [f"{results[t][name]['flagged'] * 100:.0f}% ({results[t][name]['ms']:.1f} ms)"
                 for t in tools]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| prepare reference | " + " | ".join(
        f"{results[t]['prepare_ms']:.0f} ms" for t in tools) + " |")
    mine = results["inferwatch"]
    print("\ninferwatch with the CUSUM over the 20 numeric streams too: " + ", ".join(
        f"{k}: {v['with_sequential_ms']:.1f} ms" for k, v in mine.items() if isinstance(v, dict)))
    print("\ninferwatch, categorical codes made when a window is built (once per window, "
          "in the window stage's worker thread, not part of a check): " + ", ".join(
              f"{k}: {v['codes_ms']:.1f} ms" for k, v in mine.items() if isinstance(v, dict)))
    peaks = ", ".join(f"{k}: {v['peak_mib']:.1f}" for k, v in mine.items() if isinstance(v, dict))
    print(f"\nreference profile: {mine['reference_bytes'] / 1024:.0f} KiB; peak MiB allocated "
          f"per check: {peaks}")
    print(f"sequential: {json.dumps(sequential_rate())}")


if __name__ == "__main__":
    main()
