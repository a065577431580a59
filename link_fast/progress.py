"""Progress on long work: a tqdm bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys

from .terminal import printable


class Progress:
    """Work done and throughput. ``enabled`` None: a bar when stderr is a terminal."""

    def __init__(self, total: int | None, enabled: bool | None, unit: str = "tok"):
        self.bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(printable(name), refresh=False)
            self.bar.update(n)

    def write(self, message: str) -> None:
        """A log line above the bar (or plainly on stderr without one); names in it come from
        files, so control characters are escaped."""
        if self.bar is not None:
            self.bar.write(printable(message), file=sys.stderr)
        else:
            print(printable(message), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
