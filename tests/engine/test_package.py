"""The engine package: public names imported on first use, each the object its module defines."""

from __future__ import annotations

import importlib

from researchgym import engine


def test_every_public_name_is_the_object_its_module_defines():
    modules = {name: importlib.import_module(module) for name, module in engine._LAZY.items()}
    # importing a submodule binds it on the package: no public name may be a submodule's name
    for name, module in modules.items():
        assert getattr(engine, name) is getattr(module, name), name
    assert sorted(engine.__all__) == sorted(engine._LAZY)
