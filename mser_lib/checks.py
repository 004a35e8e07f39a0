"""Range and type checks of settings, run where each settings dataclass is defined (``__post_init__``).

Every failure raises :class:`ConfigError` (a ``ValueError``) whose message names the class and field, the
value found and what is allowed, e.g. ``TrainConfig.epochs=0: expected an integer >= 1``. The checks
never change a value: a valid setting is stored (and hashed) exactly as given.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing

#: The largest training seed (numpy's legacy seeding takes 32 bits).
MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """A setting is of the wrong type or outside its allowed range (a user error, not a bug)."""

    def __init__(self, owner: str, field: str, value, expected: str) -> None:
        self.owner, self.field, self.value, self.expected = owner, field, value, expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{owner}.{field}={shown}: expected {expected}")

    def __reduce__(self):
        # rebuilt from the same four arguments, so the error crosses a process boundary (a grid worker) as itself
        return type(self), (self.owner, self.field, self.value, self.expected)


def _name(obj) -> str:
    return type(obj).__name__


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _matches(value, hint) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (the simple types settings use)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_real(value)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is tuple or origin is tuple:
        return isinstance(value, (tuple, list))
    if hint is list or origin is list:
        return isinstance(value, list)
    return True  # an annotation these checks do not know: no type check


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if hint is dict or origin is dict:
        return "a mapping"
    if hint is tuple or origin is tuple:
        return "a list"
    return getattr(hint, "__name__", str(hint))


def check_types(obj) -> None:
    """Every field of the dataclass ``obj`` holds a value of its annotated type (an int where a float is
    annotated is fine; a bool is never a number)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        hint = hints.get(f.name)
        value = getattr(obj, f.name)
        if hint is not None and not _matches(value, hint):
            raise ConfigError(_name(obj), f.name, value, _describe(hint))


def _wanted(kind: str, unbounded: str, low, high, fmt, low_open: bool = False, high_open: bool = False,
            optional: bool = False, none_means: str = "") -> str:
    """What a range check expected, e.g. ``an integer in [1, 4]``, ``a number > 0``, ``... or None``."""
    if low is not None and high is not None:
        want = f"{kind} in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}{')' if high_open else ']'}"
    elif low is not None:
        want = f"{kind} {'>' if low_open else '>='} {fmt(low)}"
    elif high is not None:
        want = f"{kind} {'<' if high_open else '<='} {fmt(high)}"
    else:
        want = unbounded
    return want + (f" or None{f' ({none_means})' if none_means else ''}" if optional else "")


def integer(obj, field: str, minimum: int | None = None, maximum: int | None = None,
            optional: bool = False, none_means: str = "") -> None:
    """``obj.field`` is an integer in ``[minimum, maximum]`` (or None when ``optional``)."""
    v = getattr(obj, field)
    if optional and v is None:
        return
    ok = _is_int(v) and (minimum is None or v >= minimum) and (maximum is None or v <= maximum)
    if not ok:
        raise ConfigError(_name(obj), field, v, _wanted("an integer", "an integer", minimum, maximum, str,
                                                        optional=optional, none_means=none_means))


def real(obj, field: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False, optional: bool = False, none_means: str = "") -> None:
    """``obj.field`` is a finite number in the interval given (``low_open``/``high_open``: end excluded),
    or None when ``optional``."""
    v = getattr(obj, field)
    if optional and v is None:
        return
    ok = _is_real(v) and math.isfinite(float(v))
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ConfigError(_name(obj), field, v, _wanted("a number", "a finite number", low, high, "{:g}".format,
                                                        low_open, high_open, optional, none_means))


def choice(obj, field: str, choices, optional: bool = False) -> None:
    """``obj.field`` is one of ``choices`` (or None when ``optional``)."""
    v = getattr(obj, field)
    if optional and v is None:
        return
    if not isinstance(v, str) or v not in choices:
        want = "one of " + ", ".join(repr(c) for c in choices) + (" or None" if optional else "")
        raise ConfigError(_name(obj), field, v, want)


def modalities(obj, field: str = "modalities") -> None:
    """``obj.field`` is a non-empty subset of ``"tav"`` without repeats."""
    v = getattr(obj, field)
    if not isinstance(v, str) or not v or set(v) - set("tav") or len(set(v)) != len(v):
        raise ConfigError(_name(obj), field, v, "a non-empty subset of 'tav' (letters t, a, v, each at most "
                          "once), e.g. 'tav' or 'ta'")


def dropouts(obj, *fields: str) -> None:
    """Each field is a dropout probability in [0, 1)."""
    for f in fields:
        real(obj, f, 0.0, 1.0, high_open=True)


def weights(obj, *fields: str, optional: bool = False) -> None:
    """Each field is a finite loss weight >= 0."""
    for f in fields:
        real(obj, f, 0.0, optional=optional)
