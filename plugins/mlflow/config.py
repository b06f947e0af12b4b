"""`[plugins.mlflow]`: where the tracking server is, how to authenticate, what to log."""

from __future__ import annotations

from typing import Annotated

import msgspec

from agent.config import Duration, FieldError, InputFile, PluginConfig, Secret


class MlflowConfig(PluginConfig):
    enabled: bool = False
    tracking_uri: str = "http://127.0.0.1:5000"  # the server's REST root, as MLFLOW_TRACKING_URI
    experiment_prefix: str = "inferwatch/"  # one experiment per model: <prefix><model>
    token: Secret | None = None  # bearer token (Databricks and most gateways)
    username: str | None = None  # basic auth (mlflow server --app-name basic-auth)
    password: Secret | None = None
    ca_file: InputFile | None = None  # for an https:// tracking_uri signed by a private CA
    request_timeout: Duration = Duration(10.0)
    max_tag_bytes: Annotated[int, msgspec.Meta(ge=100, le=8000)] = 5000  # MLflow's limit: 8000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tracking_uri.startswith(("http://", "https://")):
            raise FieldError("tracking_uri", "must be an http:// or https:// URL")
        if self.password is not None and self.username is None:
            raise FieldError("username", "a password needs a username")
        if self.ca_file and not self.tracking_uri.startswith("https://"):
            raise FieldError("ca_file", "a CA file needs an https:// tracking_uri")
        if self.token is not None and self.username is not None:
            raise FieldError("token", "use a token or a username and password, not both")
