"""`inferwatch reference build`: the drift plugin's command, added through
`inferwatch_commands` like any plugin's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.errors import EX_OK, ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    reference = sub.add_parser("reference", help="reference profiles for drift detection")
    ref_sub = reference.add_subparsers(required=True, metavar="ACTION")
    ref_build = ref_sub.add_parser("build", help="profile training or validation data")
    ref_build.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE",
                           help="NDJSON samples, CSV with a header, or Parquet (pyarrow)")
    ref_build.add_argument("--model", required=True)
    ref_build.add_argument("--model-version", default="")
    ref_build.add_argument("--out", type=Path, required=True, metavar="FILE")
    ref_build.set_defaults(func=reference_build)


def reference_build(args: argparse.Namespace) -> int:
    from plugins.drift.profile import findings  # noqa: PLC0415 - numpy on demand
    from plugins.drift.reference import build_reference  # noqa: PLC0415

    profile = build_reference(args.source, args.model, args.model_version)
    try:
        profile.save(args.out)
    except OSError as exc:
        raise ConfigError([f"--out: {args.out}: {exc.strerror or exc}"]) from None
    except ValueError as exc:  # a statistic that JSON cannot carry
        raise ConfigError([f"--out: {exc}"]) from None
    print(f"{args.out}: {profile.count} rows, {len(profile.numeric)} numeric and "
          f"{len(profile.categorical)} categorical features, "
          f"{args.out.stat().st_size / 1024:.0f} KiB")
    if aside := findings(profile):  # data-quality findings: not in the mean and spread
        print(f"{args.out}: values set aside as extreme or non-finite: {json.dumps(aside)}",
              file=sys.stderr)
    return EX_OK
