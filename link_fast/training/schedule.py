"""Schedules of ``ratio`` and ``portion`` over consumed samples (docs/DESIGN.md §9).

A schedule maps a sample's position (how many samples were consumed before it, counted over
epochs: ``epoch * samples_per_epoch + index``) to a probability in [0, 1]. It is a pure
function of the position, so every data-loader worker and rank computes the same value for
the same sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError

KINDS = ("constant", "linear", "cosine", "steps")


@dataclass(frozen=True)
class Schedule:
    """A probability as a function of the number of consumed samples.

    - ``constant:V`` (or just ``V``): always V.
    - ``linear:A:B:N``: from A at position 0 to B at position N, then B.
    - ``cosine:A:B:N``: from A to B along half a cosine over N samples, then B.
    - ``steps:V0:N1:V1:N2:V2...``: V0 until position N1, V1 from N1, V2 from N2, ...

    Or any callable ``f(position) -> float``; its values are checked when used.
    """

    kind: str
    values: tuple[float, ...] = ()
    bounds: tuple[int, ...] = ()
    function: Callable[[int], float] | None = None

    def __call__(self, position: int) -> float:
        if self.function is not None:
            return _probability(self.function(position), f"schedule value at {position}")
        if self.kind == "constant":
            return self.values[0]
        if self.kind == "steps":
            value = self.values[0]
            for bound, later in zip(self.bounds, self.values[1:]):
                if position >= bound:
                    value = later
            return value
        start, end = self.values
        t = min(1.0, position / self.bounds[0]) if self.bounds[0] > 0 else 1.0
        if self.kind == "cosine":
            t = (1.0 - math.cos(math.pi * t)) / 2.0
        return start + (end - start) * t

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    def describe(self) -> str:
        """The spec string that gives this schedule (``"callable"`` for a function)."""
        if self.function is not None:
            return "callable"
        parts: list[str] = [self.kind]
        if self.kind == "steps":
            parts.append(_number(self.values[0]))
            for bound, value in zip(self.bounds, self.values[1:]):
                parts += [str(bound), _number(value)]
        else:
            parts += [_number(v) for v in self.values] + [str(b) for b in self.bounds]
        return ":".join(parts)


def schedule(spec: Schedule | str | float | Callable[[int], float], name: str = "ratio") -> Schedule:
    """A ``Schedule`` from a spec string, a number (constant) or a callable."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, bool):
        raise InputError(f"{name} must be a number, a schedule spec or a callable, got {spec!r}")
    if isinstance(spec, (int, float)):
        return Schedule("constant", (_probability(spec, name),))
    if callable(spec):
        return Schedule("callable", function=spec)
    if not isinstance(spec, str):
        raise InputError(f"{name} must be a number, a schedule spec or a callable, got {spec!r}")
    return _parse(spec.strip(), name)


def _parse(spec: str, name: str) -> Schedule:
    kind, *fields = spec.split(":")
    if kind not in KINDS:
        # a bare number is a constant
        return Schedule("constant", (_probability(_float(kind, spec, name), name),))
    where = f"{name} schedule {spec!r}"
    if kind == "constant":
        if len(fields) != 1:
            raise InputError(f"{where}: constant takes one value (constant:V)")
        return Schedule("constant", (_probability(_float(fields[0], spec, name), where),))
    if kind in ("linear", "cosine"):
        if len(fields) != 3:
            raise InputError(f"{where}: {kind} takes a start, an end and a length ({kind}:A:B:N)")
        a, b = (_probability(_float(f, spec, name), where) for f in fields[:2])
        return Schedule(kind, (a, b), (_count(fields[2], where),))
    if len(fields) < 3 or len(fields) % 2 == 0:
        raise InputError(f"{where}: steps takes a first value, then position:value pairs (steps:V0:N1:V1...)")
    values = tuple(_probability(_float(f, spec, name), where) for f in fields[0::2])
    bounds = tuple(_count(f, where) for f in fields[1::2])
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise InputError(f"{where}: step positions must increase")
    return Schedule("steps", values, bounds)


def _float(text: str, spec: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(
            f"{name} schedule {spec!r}: {text!r} is not a number (kinds: a number, {', '.join(KINDS)})"
        ) from None


def _count(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a whole number of samples") from None
    if value < 0:
        raise InputError(f"{where}: a number of samples must be >= 0, got {value}")
    return value


def _probability(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def _number(value: float) -> str:
    return repr(value)
