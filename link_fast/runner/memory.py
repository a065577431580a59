"""The memory probe the run records carry (``memory_mb``)."""

from __future__ import annotations

import sys


def memory_mb() -> dict[str, float]:
    """This process's peak resident set (VmHWM: heap plus mapped file pages) and its anonymous
    resident memory now (RssAnon: what the page cache cannot take back), in MB. Linux; elsewhere
    the peak from getrusage and no RssAnon."""
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssAnon"):
                    found[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    if "VmHWM" not in found:
        import resource

        found["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
            1024 if sys.platform != "darwin" else 2**20
        )
    return {"peak_rss": round(found["VmHWM"], 1), "anon_rss": round(found.get("RssAnon", 0.0), 1)}
