"""`[plugins.ingest]`: the listeners, their limits, the late-label join and the windows."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from agent.broker import Broker, topic_problem
from agent.config import (
    ConfigPath,
    Duration,
    FieldError,
    InputFile,
    PluginConfig,
    Secret,
    parse_listen,
)
from agent.exposure import is_loopback
from agent.redact import RedactSettings, check_names
from agent.window import WindowSpec
from plugins.ingest.bounds import Limits
from plugins.ingest.models import ModelConfig


class IngestMqtt(Broker, kw_only=True, forbid_unknown_fields=True):
    """`[plugins.ingest.mqtt]`: a subscription for edge devices that publish predictions.

    The broker's keys are agent.broker's (client_id default: <host_id>-ingest). Payloads are
    one JSON record, a JSON array or NDJSON, samples and labels alike. The session is
    persistent (QoS 1, fixed client id), so what is published while the agent restarts waits
    in the broker.
    """

    topics: list[str] = msgspec.field(default_factory=lambda: ["inferwatch/v1/ingest/#"])
    qos: Literal[0, 1] = 1
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 << 20)] = 16 << 20

    def __post_init__(self) -> None:
        if not self.topics:
            raise FieldError("topics", "subscribe to at least one topic")
        for i, topic in enumerate(self.topics):
            if problem := topic_problem(topic.replace("+", "x").replace("#", "x")):
                raise FieldError(f"topics[{i}]", problem)
        super().__post_init__()


class IngestConfig(PluginConfig):
    enabled: bool = False
    socket_path: ConfigPath = ConfigPath("")  # default: agent.client.socket_candidates()
    socket_mode: Annotated[int, msgspec.Meta(ge=0, le=0o777)] = 0o660  # owner and group
    max_record_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 << 20)] = 1 << 20
    # Bounds on the names clients choose (docs/ingestion.md, "Limits").
    max_models: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100  # more: refused
    max_versions: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10  # per model; more: _other
    max_streams: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 200  # (model, version) pairs
    max_classes: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 1000  # per stream
    max_groups: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100  # per stream
    http_listen: str = ""  # e.g. "127.0.0.1:9880"; empty: no HTTP endpoint
    token: Secret | None = None  # bearer token for HTTP; required off loopback
    tls_cert_file: InputFile | None = None  # HTTPS for the endpoint, as the exporter offers
    tls_key_file: InputFile | None = None
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 16 << 20
    body_timeout: Duration = Duration(30.0)  # a client slower than this is cut off
    # Requests read or decoded at once (more get 503): bounds memory to ~ this x max_body_bytes.
    max_requests: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4
    label_ttl: Duration = Duration(7 * 86400.0)  # how long a prediction waits for its label
    max_waiting: Annotated[int, msgspec.Meta(ge=1)] = 10_000_000  # per table, oldest dropped
    # The join on disk: its file at most, the free space it leaves the outbox, a value's size.
    max_join_bytes: Annotated[int, msgspec.Meta(ge=1 << 20)] = 1 << 30
    join_reserve_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1 << 30
    max_join_value_bytes: Annotated[int, msgspec.Meta(ge=64, le=16 << 20)] = 4096
    join_queue: Annotated[int, msgspec.Meta(ge=1)] = 100_000  # in memory, before the join
    windows: list[str] = msgspec.field(default_factory=lambda: ["1h"])
    label_wait: Duration = Duration(3600.0)  # a window is final this long after it closes
    # A provisional view of each window still open, as window="<spec>:running", this often.
    running_views: bool = True
    running_every: Duration = Duration(30.0)
    max_window_samples: Annotated[int, msgspec.Meta(ge=10, le=10_000_000)] = 20_000
    max_features: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    mqtt: IngestMqtt | None = None  # subscribe to edge devices' predictions
    # Redaction rules (agent/redact.py) for request ids and feature values; [] = none.
    redact: list[str] = msgspec.field(default_factory=list)
    redaction: RedactSettings = msgspec.field(default_factory=RedactSettings)

    @property
    def limits(self) -> Limits:
        return Limits(max_models=self.max_models, max_versions=self.max_versions,
                      max_streams=self.max_streams, max_classes=self.max_classes,
                      max_groups=self.max_groups)
    def _check_http(self) -> None:
        try:
            host, _ = parse_listen(self.http_listen)
        except ValueError as exc:
            raise FieldError("http_listen", str(exc)) from None
        if self.token is None and not is_loopback(host):
            raise FieldError("token", f"required when http_listen ({self.http_listen}) is not "
                             'a loopback address: token = {file = "..."}')
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise FieldError("tls_key_file", "tls_cert_file and tls_key_file go together")

    def __post_init__(self) -> None:
        super().__post_init__()
        if problem := check_names(self.redact, self.redaction):
            raise FieldError("redact", problem)
        if self.http_listen:
            self._check_http()
        for i, text in enumerate(self.windows):
            try:
                WindowSpec.parse(text)
            except ValueError as exc:
                raise FieldError(f"windows[{i}]", str(exc)) from None
