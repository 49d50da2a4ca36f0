"""Model families: the settings each declares and the model its builder makes."""

from __future__ import annotations

import pytest
import torch

from researchgym.engine.models import ACTIVATIONS, BUILDERS, build_model
from researchgym.engine.settings import MODEL_FAMILIES, model_settings
from researchgym.spaces import Schema


@pytest.mark.parametrize("family", sorted(MODEL_FAMILIES))
def test_every_family_builds_from_its_defaults(family: str) -> None:
    schema = Schema(model_settings(tuple(MODEL_FAMILIES)))
    metaprogram = schema.validate({"model.family": family})
    # settings of other families are inactive, so absent from the metaprogram
    read = set(MODEL_FAMILIES[family])
    assert {name for name in metaprogram if name != "model.family"} == read
    model = build_model(metaprogram, (1, 8, 8), 10)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_every_declared_family_and_activation_has_a_builder() -> None:
    assert set(BUILDERS) == set(MODEL_FAMILIES)
    schema = Schema(model_settings(tuple(MODEL_FAMILIES)))
    assert set(schema["model.activation"].choices) == set(ACTIVATIONS)


def test_a_setting_is_active_only_for_families_that_read_it() -> None:
    schema = Schema(model_settings(("mlp", "cnn")))
    assert schema["model.depth"].when == {"model.family": ("mlp",)}
    assert schema["model.width"].when == {"model.family": ("mlp", "cnn")}
    assert "model.channels" in schema.validate({"model.family": "cnn"})
    assert "model.channels" not in schema.validate({"model.family": "mlp"})


def test_unknown_families_are_named_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown \['rnn'\].*'cnn', 'linear', 'mlp'"):
        model_settings(("mlp", "rnn"))
    with pytest.raises(ValueError, match="unknown model family 'rnn'"):
        build_model({"model.family": "rnn"}, (4,), 2)
