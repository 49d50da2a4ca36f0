"""The root of every error ResearchGym raises.

Each error derives from :class:`ResearchGymError` and keeps the standard base
that fits it (``ValueError`` for bad input, ``FileNotFoundError`` for missing
files, ...), so ``except researchgym.ResearchGymError`` catches them all while
``except ValueError`` still works.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "MAX_ERROR_CHARS",
    "ConfigError",
    "ConfigTypeError",
    "DependencyNotInstalled",
    "NotFound",
    "ResearchGymError",
    "StateError",
    "did_you_mean",
    "shorten",
]

#: Longest error message or echoed value a step reports or stores.
MAX_ERROR_CHARS = 500

#: Longest name compared by :func:`did_you_mean` (longer ones are junk, and comparing is quadratic).
_MAX_NAME_CHARS = 100


class ResearchGymError(Exception):
    """Base class of ResearchGym's errors."""


class ConfigError(ResearchGymError, ValueError):
    """An argument or configuration value that is not valid."""


class ConfigTypeError(ResearchGymError, TypeError):
    """An argument of a type that is not accepted."""


class NotFound(ResearchGymError, LookupError):
    """An id or run that is not there."""


class StateError(ResearchGymError, RuntimeError):
    """An operation that cannot go on: called out of order, or a worker or store that failed it."""


class DependencyNotInstalled(ResearchGymError, ImportError):
    """An optional dependency that a feature needs is not installed."""


def did_you_mean(word: object, known: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the known name closest to ``word``, or ``""``.

    Bounded: a ``word`` that is not a string, and names longer than 100
    characters, are not compared.
    """
    if not isinstance(word, str) or len(word) > _MAX_NAME_CHARS:
        return ""
    names = [n for n in known if isinstance(n, str) and len(n) <= _MAX_NAME_CHARS]
    close = difflib.get_close_matches(word, names, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def shorten(text: object, limit: int = 80) -> str:
    """``repr``-like text of ``text`` cut to about ``limit`` characters, saying how long it was.

    For quoting a value in an error message without echoing a huge one back.
    """
    shown = _safe_repr(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[: max(limit - 30, 10)]}... ({len(shown):,} characters)"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not escape an error message
        return f"<{type(value).__name__} object>"
