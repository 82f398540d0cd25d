"""Model registry and the shapes every model must produce."""
from __future__ import annotations

import pytest
import torch

from dataprune.train.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("in_channels, image_size", [(1, 28), (3, 32)])
def test_output_and_feature_shapes(name, in_channels, image_size):
    model = build_model(name, num_classes=7, in_channels=in_channels, image_size=image_size)
    x = torch.randn(5, in_channels, image_size, image_size)
    features = model.features(x)
    assert features.shape == (5, model.feature_dim)
    assert model(x).shape == (5, 7)
    torch.testing.assert_close(model.head(features), model(x))


def test_registry_names_and_errors():
    assert {"mlp", "small-cnn"} <= set(MODELS)
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; expected one of \['mlp', 'small-cnn'"):
        build_model("resnet", 10)
    with pytest.raises(ValueError, match="num_classes 1"):
        build_model("mlp", 1)
