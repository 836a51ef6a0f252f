"""Shared fixtures: small seeded models and images, built once per test session."""
import pytest
import torch

import detr_explained as de


@pytest.fixture(scope="session")
def r50():
    """A seeded random ResNet-50 panoptic model in eval mode."""
    torch.manual_seed(0)
    return de.build_model("detr-r50-panoptic")


@pytest.fixture(scope="session")
def tiny():
    torch.manual_seed(0)
    return de.build_model("detr-tiny")


def random_image(height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, height, width, generator=generator)
