"""Running views: what each window still open says so far, clearly marked as provisional.

With `windows = ["1h"]` the first window closes an hour after the first sample; a newcomer
would see no model metric until then. Every `running_every` the open pane of each stream is
copied (on the loop), built into columns (in the worker thread, the copy only) and assembled
with the closed panes the window spans, as a `Window` whose spec is `"<spec>:running"`,
`final = False` and `provisional = True`. The open pane itself is untouched.
"""

from __future__ import annotations

import dataclasses

from agent.window import Window
from plugins.ingest.assemble import assemble
from plugins.ingest.windows import Pane, Stream, WindowStage

SUFFIX = ":running"


def snapshot(stage: WindowStage) -> list[Pane]:
    """Copies of the open panes that hold rows (cheap: the lists, not the samples)."""
    copies = []
    for stream in stage.streams.values():
        for spec, pane in stream.open.items():
            if pane.samples:
                # No `index`: the copy takes no labels; build() makes the columns' own.
                copies.append(Pane(stream, spec, pane.start, pane.end, pane.cap,
                                   samples=list(pane.samples), ts=list(pane.ts),
                                   labels=dict(pane.labels), seen=pane.seen))
    return copies


def views(copies: list[Pane], now: float) -> list[Window]:
    """The built copies as provisional windows (on the loop, after build() in a worker)."""
    out = []
    for copy in copies:
        copy.merge_classes()
        copy.apply_labels()
        window = assemble(copy.stream, copy.spec, [*_closed_panes(copy), copy], final=False)
        out.append(dataclasses.replace(window, spec=copy.spec.name + SUFFIX,
                                       end=min(now, copy.end), provisional=True))
    return out


def _closed_panes(copy: Pane) -> list[Pane]:
    """The built panes a sliding window spans before the open one."""
    stream: Stream = copy.stream
    spec = copy.spec
    closed = [p for p in stream.closed[spec] if p.columns is not None]
    if spec.panes == 1:
        return []
    if spec.by_count:
        return closed[-(spec.panes - 1):]
    return [p for p in closed if copy.end - spec.size < p.end < copy.end]
