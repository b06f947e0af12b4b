"""`[plugins.drift]`: references, the decision rule, persistence, sequential detection, retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from agent.config import Duration, FieldError, InputFile, PluginConfig


class ModelDrift(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reference: InputFile | None = None  # from `inferwatch reference build`; else captured

    def __post_init__(self) -> None:
        """A file that is not a profile is named by `inferwatch check`, with its TOML path,
        rather than logged once the agent runs (which then captured its own reference)."""
        if self.reference:
            from plugins.drift.profile import Profile  # noqa: PLC0415 - numpy only if needed

            try:
                Profile.load(Path(self.reference))
            except ValueError as exc:
                raise FieldError("reference", str(exc)) from None


MOVED_URL = ("removed: retrain requests are `retrain.requested` events now; POST them with "
             '[plugins.webhook] enabled = true, url = "<this url>", match = '
             '["retrain.requested"] (docs/sinks.md)')
MOVED_AUTH = ("removed: set it as [plugins.webhook] bearer_token = {file = ...}, with "
               'match = ["retrain.requested"] (docs/sinks.md)')


class Retrain(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    drift_persisted: Duration | None = None  # drift declared this long: ask for a retrain
    performance_metric: str = "accuracy"  # realized, else `estimated_<metric>`
    performance_below: float | None = None
    max_model_age: Duration | None = None  # "weekly to quarterly": e.g. "30d"
    cooldown: Duration = Duration(86400.0)  # one incident asks once
    # Removed: retrain.requested is an event that [plugins.webhook] delivers (durably, signed).
    # Still parsed, so that `check` names the replacement instead of "unknown key"; the
    # token is left unread (a raw table) so that a missing file does not hide that message.
    webhook_url: str = ""
    webhook_token: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.webhook_url:
            raise FieldError("webhook_url", MOVED_URL)
        if self.webhook_token is not None:
            raise FieldError("webhook_token", MOVED_AUTH)


class DriftConfig(PluginConfig):
    needs = ("ingest",)  # it reads the windows ingest publishes
    enabled: bool = False  # with [plugins.ingest]: it reads the windows ingest publishes
    reference_samples: Annotated[int, msgspec.Meta(ge=100)] = 10_000  # captured if no file
    numeric_min_effect: Annotated[float, msgspec.Meta(gt=0)] = 0.05  # W1 in sigmas
    categorical_min_effect: Annotated[float, msgspec.Meta(gt=0)] = 0.03  # total variation
    correlation_min_effect: Annotated[float, msgspec.Meta(gt=0)] = 0.1
    false_alarm_rate: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.01  # per window
    persist_windows: Annotated[int, msgspec.Meta(ge=1)] = 2  # K of ...
    persist_of: Annotated[int, msgspec.Meta(ge=1)] = 3  # ... N windows declare drift
    clear_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8  # of the threshold
    sequential: bool = True  # CUSUM on every numeric stream
    sequential_arl: Annotated[float, msgspec.Meta(ge=100)] = 1_000_000.0  # samples
    sequential_shift: Annotated[float, msgspec.Meta(gt=0)] = 0.1  # sigmas worth catching
    top_features: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    # A drift.window event (info) per final window: what MLflow and MQTT consumers record.
    window_events: bool = True
    # A profile.window event per final window: counts on the reference's bins and the labelled
    # rows' confusion, published on <prefix>/profiles/<model> for a fleet consumer (docs/fleet.md).
    fleet_profiles: bool = False
    models: dict[str, ModelDrift] = msgspec.field(default_factory=dict)
    retrain: Retrain = msgspec.field(default_factory=Retrain)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.persist_windows > self.persist_of:
            raise FieldError("persist_windows", "K of N needs K <= N (`persist_of`)")
