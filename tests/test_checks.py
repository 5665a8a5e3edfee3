"""kolmogorov._checks.check_choice: the one "must be one of" check every package uses."""
from __future__ import annotations

import pytest

from kolmogorov._checks import check_choice


def test_an_allowed_value_comes_back():
    assert check_choice("loss", "l2", ("l2", "cross_entropy")) == "l2"
    assert check_choice("activation", "tanh", {"relu": 1, "tanh": 2}) == "tanh"  # a mapping's keys


@pytest.mark.parametrize("value", ["l1", "", None, 2, ["l2"], ("l2",)])
def test_anything_else_is_named_with_the_allowed_values(value):
    with pytest.raises(ValueError) as raised:
        check_choice("loss", value, ("l2", "cross_entropy"))
    assert str(raised.value) == f"loss must be one of l2, cross_entropy; got {value!r}"


def test_every_layer_raises_the_same_message():
    """A bad choice in kolmogorov, landscape and nets gives check_choice's message, word for word."""
    from kolmogorov import NOISE_KINDS, epsilon
    from landscape.objective import LOSSES, check_choice as landscape_check_choice
    from nets import build_model
    from nets.companion.datasets import DATASETS, load_dataset
    from nets.models.registry import list_models

    cases = [(lambda: epsilon("x", 3), f"noise must be one of {', '.join(NOISE_KINDS)}; got 'x'"),
             (lambda: landscape_check_choice("loss", "x", LOSSES), f"loss must be one of {', '.join(LOSSES)}; got 'x'"),
             (lambda: load_dataset("x"), f"dataset must be one of {', '.join(DATASETS)}; got 'x'"),
             (lambda: build_model("x"), f"name must be one of {', '.join(list_models())}; got 'x'")]
    for call, message in cases:
        with pytest.raises(ValueError) as raised:
            call()
        assert str(raised.value) == message
