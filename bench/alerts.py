"""CPU per evaluation of the alert engine: 1,000 metric rules over a registry of 20,000 series.

    .venv/bin/python bench/alerts.py                      # 200 evaluations
    .venv/bin/python bench/alerts.py --rules 1000 --series 20000 --evaluations 500
    .venv/bin/python bench/alerts.py --plain     # parts without keys_version, for comparison

The registry is what the agent reads back (agent.readback): 200 metric names of 100 series
each (labels gpu, model, shard), in 4 plugin parts, rebuilt before every evaluation with new
values and the same series, as collectors commit them. The rules (5 per metric) select with
equality and regex matchers; one in five is a rate over a counter (`increase` over 5m); one
in five divides by another metric. About 1 % of the series cross their fire threshold, so
alerts fire, renew and resolve along the way (a new set of hot series every 20
evaluations). Emitting the alert events (rendering, envelopes) is timed apart: it costs per
state change, not per rule. CPU is the evaluating thread's own
(time.thread_time), the same figure the engine exports as inferwatch_alerts_last_evaluation_
seconds. The peer in the same run: one pass of plain Python over the 20,000 values (the
least any evaluation that looks at every series could cost).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.config import build_config
from agent.metrics import keyed
from agent.model import Event, Severity
from agent.readback import Families
from plugins.alerts.config import AlertsConfig
from plugins.alerts.engine import Engine

NAMES = ("gpu", "model", "shard")


def registry(metrics: int, per_metric: int, step: int, rng: random.Random) -> Families:
    families: Families = {}
    for i in range(metrics):
        parts: list[dict[tuple[str, ...], float]] = [{} for _ in range(4)]
        for j in range(per_metric):
            key = (str(j % 8), f"model-{j // 8}", str(j))
            hot = (i * 7 + j + step // 20) % 97 == 0  # ~1 %, a new set every 20 evaluations
            value = 95.0 + rng.random() if hot else 50.0 + rng.random()
            if i % 5 == 1:  # a counter
                value = float(step * (j + 1) + (50 if hot else 0) * step)
            parts[j % 4][key] = value
        families[f"inferwatch_bench_{i}{'_total' if i % 5 == 1 else ''}"] = (NAMES, parts)
    return families


def rules(count: int, metrics: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in range(count):
        i = r % metrics
        metric = f"inferwatch_bench_{i}{'_total' if i % 5 == 1 else ''}"
        rule: dict[str, Any] = {"name": f"Rule{r}", "metric": metric,
                                "matchers": [f'gpu="{r % 8}"', f'model=~"model-{r % 3}.*"'],
                                "op": ">", "fire": 90, "clear": 80}
        if i % 5 == 1:
            rule |= {"function": "increase", "range": "5m", "fire": 1000, "clear": 500}
        elif i % 5 == 2:
            rule |= {"divide_by": f"inferwatch_bench_{(i + 1) % metrics}", "fire": 1.5,
                     "clear": 1.2}
        out.append(rule)
    return out


def engine(count: int, metrics: int, now: list[float]) -> Engine:
    raw = {"plugins": {"alerts": {"builtin_rules": False, "rules": rules(count, metrics),
                                  "unknown_metrics": "warn", "max_alerts": 100_000}}}
    config = build_config(raw, {"alerts": AlertsConfig}).plugins["alerts"]
    assert isinstance(config, AlertsConfig)

    def make_event(kind: str, *, severity: Severity, data: dict[str, Any],
                   attributes: dict[str, Any]) -> Event:
        return Event(kind=kind, source="alerts", host="bench", severity=severity, data=data,
                     attributes=attributes)

    return Engine(config, "bench", make_event, clock=lambda: now[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--evaluations", type=int, default=200)
    parser.add_argument("--churn", type=float, default=1.0,
                        help="share of the plugin parts recommitted between evaluations "
                             "(1: every collector committed since the last evaluation)")
    parser.add_argument("--plain", action="store_true",
                        help="plain dicts as parts, without the commit's keys_version "
                             "(the engine hashes every new part's keys: the old read-back)")
    args = parser.parse_args()
    metrics, rng, now = 200, random.Random(1), [1_700_000_000.0]
    per_metric = args.series // metrics
    eng = engine(args.rules, metrics, now)
    costs, emits, peer, commits, sent = [], [], [], [], 0
    families: Families = {}
    for step in range(args.evaluations):
        fresh = registry(metrics, per_metric, step, rng)
        began = time.thread_time()
        families = recommit(families, fresh, args.churn, rng, args.plain)
        commits.append(time.thread_time() - began)
        now[0] += 15
        began = time.thread_time()
        eng.evaluate(families)
        costs.append(time.thread_time() - began)
        began = time.thread_time()
        sent += eng.outgoing(lambda _e: True)
        emits.append(time.thread_time() - began)
        began = time.thread_time()
        _touch(families)
        peer.append(time.thread_time() - began)
    report(costs, peer, args, sent, eng.count())
    print(f"committing the parts (collectors' side, outside the evaluation; key tuples hashed "
          f"at the commit{', skipped: --plain' if args.plain else ''}, the parts they "
          f"replace freed): median "
          f"{statistics.median(commits[1:]) * 1000:.2f} ms per evaluation's recommits")
    print(f"emitting the alert events: median {statistics.median(emits) * 1000:.2f} ms, "
          f"max {max(emits) * 1000:.2f} ms per evaluation")


def recommit(old: Families, new: Families, churn: float, rng: random.Random,
             plain: bool = False) -> Families:
    """The registry after collectors committed: a `churn` share of the parts are new dicts,
    the rest the very dicts of the last evaluation (their collectors did not run since).
    A new part is committed as PluginMetrics.commit does (agent.metrics.keyed: its key
    tuples hashed at the commit, the version kept if the hash is the last commit's); `plain`
    leaves plain dicts, the
    read-back before keys_version (every new part hashed by the engine)."""
    out: Families = {}
    for name, (names, parts) in new.items():
        kept = old[name][1] if old else [None] * len(parts)
        out[name] = (names, [_commit(part, kept[i], plain) if kept[i] is None
                             or rng.random() < churn else kept[i]
                             for i, part in enumerate(parts)])
    return out


def _commit(part: dict[tuple[str, ...], float], last: dict[tuple[str, ...], float] | None,
            plain: bool) -> dict[tuple[str, ...], float]:
    return part if plain else keyed(part, last)


def _touch(families: Families) -> float:
    total = 0.0
    for _names, parts in families.values():
        for part in parts:
            for value in part.values():
                total += value > 90.0
    return total


def report(costs: list[float], peer: list[float], args: argparse.Namespace, sent: int,
           active: int) -> None:
    steady = sorted(costs[1:])
    ms = [c * 1000 for c in steady]
    print(f"{args.rules} rules, {args.series} series, {args.evaluations} evaluations, "
          f"churn {args.churn:g}{', plain dicts' if args.plain else ''}")
    print(f"first evaluation (selections compiled): {costs[0] * 1000:.2f} ms CPU")
    print(f"steady: median {statistics.median(ms):.2f} ms, p99 "
          f"{ms[int(len(ms) * 0.99) - 1]:.2f} ms, max {ms[-1]:.2f} ms CPU per evaluation")
    print(f"peer (one pass over every value): median "
          f"{statistics.median(peer) * 1000:.2f} ms")
    print(f"alert events emitted: {sent}; alerts active at the end: {active}")


if __name__ == "__main__":
    main()
