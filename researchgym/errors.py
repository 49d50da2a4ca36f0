"""The root of every error ResearchGym raises.

Each error derives from :class:`ResearchGymError` and keeps the standard base
that fits it (``ValueError`` for bad input, ``FileNotFoundError`` for missing
files, ...), so ``except researchgym.ResearchGymError`` catches them all while
``except ValueError`` still works.
"""

from __future__ import annotations

__all__ = ["MAX_ERROR_CHARS", "ResearchGymError", "shorten"]

#: Longest error message or echoed value a step reports or stores.
MAX_ERROR_CHARS = 500


class ResearchGymError(Exception):
    """Base class of ResearchGym's errors."""


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
