"""The package's public surface: lazy nouns, cheap import, one root for errors."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

import researchgym
from researchgym.errors import (
    MAX_ERROR_CHARS,
    ConfigError,
    ConfigTypeError,
    ResearchGymError,
    did_you_mean,
    shorten,
)
from researchgym.planning import PlannerError, make_planner


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
    assert {"SettingError", "PlannerError", "StoreError", "TaskError"} <= {
        c.__name__ for c in errors
    }
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


# Builtin exceptions that belong to Python protocols, not to ResearchGym's own errors.
_PROTOCOL_EXCEPTIONS = {
    "NotImplementedError",
    "StopIteration",
    "StopAsyncIteration",
    "KeyboardInterrupt",
}
_BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def _builtin_raises(path: Path) -> list[str]:
    """``file:line: Name`` of each ``raise`` of a builtin exception outside a Python protocol."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.id if isinstance(exc, ast.Name) else None
            protocol = name in _PROTOCOL_EXCEPTIONS or (
                name == "AttributeError" and function == "__getattr__"
            )
            if name in _BUILTIN_EXCEPTIONS and not protocol:
                found.append(f"{path}:{node.lineno}: {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), None)
    return found


def test_the_package_raises_no_bare_builtin_exception():
    root = Path(researchgym.__file__).parent
    found = [hit for path in sorted(root.rglob("*.py")) for hit in _builtin_raises(path)]
    assert not found, "raise a ResearchGymError subclass instead of:\n" + "\n".join(found)


def test_the_raise_check_finds_a_bare_builtin_exception(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "def __getattr__(name):\n"
        "    raise AttributeError(name)\n"
        "def f(x):\n"
        "    if x:\n"
        "        raise NotImplementedError\n"
        "    raise ValueError(f'x={x}')\n"
    )
    assert _builtin_raises(module) == [f"{module}:6: ValueError"]


def test_a_bad_env_argument_is_a_research_gym_error_and_a_value_error():
    with pytest.raises(ConfigError, match="budget=0 must be a positive number") as err:
        gym.make("researchgym/Digits-v0", budget=0)
    assert isinstance(err.value, ResearchGymError) and isinstance(err.value, ValueError)


def test_an_unknown_task_suggests_the_closest_one():
    env = gym.make("researchgym/Digits-v0", store=False)
    with pytest.raises(ResearchGymError, match="did you mean 'digits'") as err:
        env.reset(options={"task": "digts"})
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="is not one of this env's tasks"):
        env.reset(options={"task": ["digits"]})
    env.close()


@pytest.mark.parametrize("name", [123, ["tpe"], None, "x" * 1_000_000])
def test_a_planner_name_that_is_not_registered_is_a_planner_error(name):
    with pytest.raises(PlannerError, match="unknown planner") as err:
        make_planner(name)
    assert isinstance(err.value, ResearchGymError) and len(str(err.value)) < MAX_ERROR_CHARS


def test_a_store_of_the_wrong_type_is_a_research_gym_error_and_a_type_error():
    with pytest.raises(ConfigTypeError, match="store= must be a path") as err:
        researchgym.open_store(42)
    assert isinstance(err.value, ResearchGymError) and isinstance(err.value, TypeError)


def test_did_you_mean_suggests_a_close_name_and_stays_bounded():
    assert did_you_mean("optim.lrr", ["optim.lr", "train.epochs"]) == "did you mean 'optim.lr'? "
    assert did_you_mean("zzzz", ["optim.lr"]) == ""
    assert did_you_mean(123, ["123"]) == ""
    start = time.perf_counter()
    assert did_you_mean("a" * 1_000_000, ["a" * 1_000_000, "ab"]) == ""
    assert did_you_mean("ab", ["a" * 1_000_000]) == ""
    assert time.perf_counter() - start < 1.0
