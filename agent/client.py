"""The client SDK for model servers: standard library only, never blocks, never raises.

    import agent.client as inferwatch

    inferwatch.configure(model="fraud", model_version="3", sample_rate=0.1)
    inferwatch.record("r-17", {"amount": 12.5, "country": "DE"}, prediction=1,
                      scores={"0": 0.2, "1": 0.8})
    inferwatch.label("r-17", 0)          # later, when the truth is known

record() and label() only append to a bounded in-memory queue; a daemon thread encodes
batches as JSON lines and writes them to the agent's Unix socket. When the agent is down,
slow, or the queue is full, records are dropped and counted (`stats()`), never waited for;
the first time the agent cannot be reached is logged once (standard `logging`, logger
"inferwatch.client"). Sampling is decided by a hash of the request id, so a prediction and
its label are kept or dropped together.

Where the socket is: one rule, `socket_candidates()`, shared with the agent. The agent
listens at the first candidate whose folder it can create; the SDK sends to the first that
exists. `$INFERWATCH_SOCKET` (or `socket_path=`) overrides both.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import socket
import threading
import time
import zlib
from collections import deque

TYPE_CHECKING = False  # typing itself costs ~5 ms of import time; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

RUN_DIR = "/run/inferwatch"  # the unit's RuntimeDirectory=inferwatch; root outside systemd
SOCKET_NAME = "ingest.sock"
DEFAULT_SOCKET = f"{RUN_DIR}/{SOCKET_NAME}"
_RECORD, _LABEL = 0, 1


def default_state_dir(env: Mapping[str, str] | None = None) -> str:
    """systemd's StateDirectory= first, then the XDG location, so `make run` works unprivileged."""
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return env["STATE_DIRECTORY"].split(":")[0]
    home = env.get("HOME") or os.path.expanduser("~")  # noqa: PTH111 - no pathlib: import time
    return (env.get("XDG_STATE_HOME") or f"{home}/.local/state") + "/inferwatch"


def socket_candidates(env: Mapping[str, str] | None = None) -> list[str]:
    """Where the agent's socket may be, in order: the one rule the SDK and the agent share.

    `$INFERWATCH_SOCKET` alone when set; else /run/inferwatch (the unit's runtime directory,
    or root's), then `$XDG_RUNTIME_DIR/inferwatch` (a user session), then the default
    state directory (anything else, e.g. a container), each with `ingest.sock` in it.
    """
    env = os.environ if env is None else env
    if env.get("INFERWATCH_SOCKET"):
        return [env["INFERWATCH_SOCKET"]]
    folders = [RUN_DIR]
    if env.get("XDG_RUNTIME_DIR"):
        folders.append(env["XDG_RUNTIME_DIR"].rstrip("/") + "/inferwatch")
    folders.append(default_state_dir(env))
    return [f"{folder}/{SOCKET_NAME}" for folder in folders]


def find_socket(candidates: list[str]) -> str:
    """The first candidate that exists, else the first (where the agent is expected)."""
    return next((path for path in candidates if os.path.exists(path)), candidates[0])  # noqa: PTH110


class Client:
    def __init__(self, *, socket_path: str | None = None, model: str = "",
                 model_version: str = "", sample_rate: float = 1.0, queue_size: int = 10_000,
                 batch_size: int = 1000, flush_interval: float = 0.05) -> None:
        self._candidates = [socket_path] if socket_path else socket_candidates()
        self.socket_path = find_socket(self._candidates)
        self._warned = False
        self.model, self.model_version = model, model_version
        self._threshold = int(max(0.0, min(1.0, sample_rate)) * 0xFFFFFFFF)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._max, self._batch, self._interval = queue_size, batch_size, flush_interval
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("queued", "sampled_out", "dropped_queue_full",
                                      "dropped_agent_unavailable", "dropped_unencodable",
                                      "sent"), 0)
        self._wake = threading.Event()
        self._pid = -1
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        atexit.register(self.flush, 1.0)

    # -- the caller's thread: cheap and non-blocking -------------------------------------

    def record(self, request_id: str, features: Mapping[str, Any], prediction: Any, *,
               scores: Mapping[str, float] | None = None, score: float | None = None,
               group: str | None = None, model: str | None = None,
               model_version: str | None = None) -> bool:
        """Queue one prediction; False if it was sampled out or dropped."""
        try:
            return self._put((_RECORD, request_id, features, prediction, scores, score, group,
                              model, model_version, time.time()), request_id)
        except Exception:  # noqa: BLE001 - the model server must never see our errors
            return False

    def label(self, request_id: str, label: Any, *, model: str | None = None) -> bool:
        """Queue the ground truth for an earlier (or later) prediction."""
        try:
            return self._put((_LABEL, request_id, label, model, time.time()), request_id)
        except Exception:  # noqa: BLE001
            return False

    def _put(self, item: tuple[Any, ...], request_id: str) -> bool:
        if zlib.crc32(str(request_id).encode()) > self._threshold:
            self._count("sampled_out")
            return False
        if len(self._queue) >= self._max:
            self._count("dropped_queue_full")
            return False
        self._queue.append(item)
        self._count("queued")
        if self._pid != os.getpid():
            self._start()
        return True

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, Any]:
        """Counts since start (queued, sent, and why anything was not: sampled out, dropped),
        the socket in use (`socket_path`) and every place looked at (`looked_at`)."""
        with self._lock:
            return {**self._counts, "waiting": len(self._queue),
                    "socket_path": self.socket_path, "looked_at": list(self._candidates)}

    # -- the background thread ---------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._sock = os.getpid(), None  # after fork(): a thread of our own
            threading.Thread(target=self._run, name="inferwatch-client", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def flush(self, timeout: float = 0.0) -> None:
        """Send what is queued now (called by the thread, and at exit)."""
        deadline = time.monotonic() + timeout
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            lines = [line for item in batch if (line := self._encode_or_count(item))]
            if not self._send(b"".join(lines)):
                self._count("dropped_agent_unavailable", len(lines))
                if time.monotonic() >= deadline:
                    return
            else:
                self._count("sent", len(lines))

    def _encode_or_count(self, item: tuple[Any, ...]) -> bytes:
        try:
            return self._encode(item)
        except Exception:  # noqa: BLE001 - one odd value must not stop the sender thread
            self._count("dropped_unencodable")
            return b""

    def _encode(self, item: tuple[Any, ...]) -> bytes:
        if item[0] == _RECORD:
            _, rid, features, prediction, scores, score, group, model, version, ts = item
            body: dict[str, Any] = {
                "model": model or self.model, "model_version": version or self.model_version,
                "request_id": str(rid), "ts": ts, "features": _clean(features),
                "prediction": _plain(prediction)}
            for key, value in (("scores", scores), ("score", score), ("group", group)):
                if value is not None:
                    body[key] = _clean(value) if key == "scores" else _plain(value)
        else:
            _, rid, label, model, ts = item
            body = {"model": model or self.model, "request_id": str(rid),
                    "label": _plain(label), "ts": ts}
        return json.dumps(body, separators=(",", ":"), default=_plain).encode() + b"\n"

    def _send(self, data: bytes) -> bool:
        if self._sock is None and not self._connect():
            return False
        try:
            assert self._sock is not None  # noqa: S101
            self._sock.sendall(data)
        except OSError:
            if self._sock is not None:
                self._sock.close()
            self._sock, self._retry_at = None, time.monotonic() + 1.0
            return False
        return True

    def _connect(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        self.socket_path = find_socket(self._candidates)  # the agent may have started since
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1.0)  # a stalled agent costs this thread a second, never the caller
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            self._retry_at = time.monotonic() + 1.0
            self._warn_once(exc)
            return False
        self._sock = sock
        return True

    def _warn_once(self, exc: OSError) -> None:
        """Say once why records are being dropped; the counts in stats() say how many."""
        with self._lock:
            if self._warned:
                return
            self._warned = True
        import logging  # noqa: PLC0415 - only on failure: import time is the SDK's budget

        logging.getLogger("inferwatch.client").warning(
            "inferwatch: cannot reach the agent at %s (%s; looked at: %s); records are dropped "
            "and counted in stats() until it answers. Set INFERWATCH_SOCKET or socket_path= "
            "to the agent's socket (`inferwatch run` logs where it listens).",
            self.socket_path, exc.strerror or exc, ", ".join(self._candidates))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, and non-finite floats (JSON has none: they become null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return _plain(value.item())
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, str | int | bool | list | dict) or value is None:
        return value
    return str(value)


def _clean(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in mapping.items()}


_default: Client | None = None


def configure(**options: Any) -> Client:
    """Set the process-wide client's options (socket_path, model, sample_rate, ...)."""
    global _default  # noqa: PLW0603 - one client per process, like logging's root logger
    _default = Client(**options)
    return _default


def _client() -> Client:
    return _default or configure()


def record(request_id: str, features: Mapping[str, Any], prediction: Any, **kw: Any) -> bool:
    return _client().record(request_id, features, prediction, **kw)


def label(request_id: str, value: Any, **kw: Any) -> bool:
    return _client().label(request_id, value, **kw)


def stats() -> dict[str, Any]:
    return _client().stats()
