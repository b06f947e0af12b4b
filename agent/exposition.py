"""Rendering /metrics: plugin snapshots rendered once per change, self-metrics every scrape.

Formatting is most of a scrape's cost in prometheus-client (~10 µs a sample); plugin series
change only once per collection interval, so their text is cached per format and version.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

_EOF = b"# EOF\n"


class Exposition:
    def __init__(self, live: CollectorRegistry, cached: CollectorRegistry,
                 version: Callable[[], Hashable]) -> None:
        self._live, self._cached, self._version = live, cached, version
        self._cache: dict[str, tuple[Hashable, bytes]] = {}

    def render(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for a scraper's Accept header."""
        encoder, content_type = choose_encoder(accept)
        version = self._version()
        hit = self._cache.get(content_type)
        if hit is None or hit[0] != version:
            body = encoder(self._cached)
            hit = (version, body.removesuffix(_EOF))  # OpenMetrics allows one EOF, at the end
            self._cache[content_type] = hit
        return hit[1] + encoder(self._live), content_type
