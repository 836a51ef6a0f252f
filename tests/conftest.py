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


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """8 small synthetic scenes (64 to 96 px) in the COCO panoptic layout: enough for a few
    training steps, quick to read. Tests must not change it."""
    from detr_explained.synthetic import write_dataset
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(str(root), num_images=8, seed=0, min_side=64, max_side=96)
    return str(root)
