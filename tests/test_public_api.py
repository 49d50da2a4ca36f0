"""The package's public surface: lazy nouns, cheap import, one root for errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import researchgym
from researchgym.errors import MAX_ERROR_CHARS, ResearchGymError, shorten


def test_importing_the_package_loads_no_heavy_library():
    code = (
        "import sys, researchgym; "
        "print(sorted(m for m in ('torch', 'duckdb', 'optuna', 'pandas', 'pyarrow', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(researchgym._LAZY))
def test_every_public_noun_resolves_to_its_definition(name):
    value = getattr(researchgym, name)
    assert value is getattr(importlib.import_module(researchgym._LAZY[name]), name)
    assert name in researchgym.__all__ and name in dir(researchgym)


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        researchgym.Nope  # noqa: B018


def _library_modules():
    for info in pkgutil.walk_packages(researchgym.__path__, "researchgym."):
        if info.name != "researchgym.__main__":
            yield importlib.import_module(info.name)


def test_every_error_class_derives_from_the_root_and_keeps_a_standard_base():
    errors = {
        cls
        for module in _library_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Exception)
        and not issubclass(cls, Warning)
        and cls.__module__.startswith("researchgym.")
        and not cls.__name__.startswith("_")
    }
    assert {"SettingError", "PlannerError", "StoreError", "TaskError"} <= {c.__name__ for c in errors}
    standard = {Exception, BaseException, object}
    for cls in errors - {ResearchGymError}:
        assert issubclass(cls, ResearchGymError), cls
        # and a standard base that says what kind of error it is (ValueError, ...)
        assert any(b.__module__ == "builtins" and b not in standard for b in cls.__mro__), cls


def test_shorten_quotes_small_values_whole_and_cuts_large_ones():
    assert shorten("cnn") == "'cnn'"
    long = shorten("x" * 10_000_000)
    assert len(long) <= 100 and "10,000,002 characters" in long
    assert len(shorten(list(range(100_000)), MAX_ERROR_CHARS)) <= MAX_ERROR_CHARS


def test_shorten_survives_a_hostile_repr():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert shorten(Hostile()) == "<Hostile object>"


def test_all_lists_exactly_the_eager_and_the_lazy_names():
    eager = {"ENV_IDS", "FAST_ENV_IDS", "FILE_ENV_IDS", "ResearchGymError", "__version__"}
    assert set(researchgym.__all__) == eager | set(researchgym._LAZY)
