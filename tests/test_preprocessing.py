"""From photos, arrays and paths to the padded batch; clear errors for bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

import detr_explained as de
from detr_explained.preprocessing import ImageBatch, check_image, resized_size

from conftest import random_image


def test_official_resize_rule():
    assert resized_size(640, 480) == (800, 1066)      # (height, width) of the cats demo image
    assert resized_size(480, 640) == (1066, 800)
    assert resized_size(2000, 500) == (333, 1332)     # the longer side is capped at 1333
    assert resized_size(1066, 800) == (800, 1066)     # already right: unchanged


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_prepare_image_accepts_common_modes(mode):
    image = Image.new("RGB", (64, 48), (200, 30, 30)).convert(mode)
    tensor = de.prepare_image(image, shorter=96)
    assert tensor.shape == (3, 96, 128) and tensor.dtype == torch.float32


def test_rgba_transparency_becomes_white_not_black():
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    pixels = np.asarray(de.load_image(image))
    assert (pixels == 255).all()


def test_numpy_and_path_inputs(tmp_path):
    array = (np.random.default_rng(0).random((50, 60, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(array).save(path)
    from_array, from_path = de.prepare_image(array), de.prepare_image(path)
    assert from_array.shape == (3, 800, 960)
    assert torch.equal(from_array, from_path)
    assert de.prepare_image(array[:, :, 0]).shape == (3, 800, 960)             # grayscale
    assert de.prepare_image(array.astype(np.float32) / 255).shape == (3, 800, 960)


def test_denormalize_inverts_prepare():
    array = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    restored = de.denormalize(de.prepare_image(array, shorter=32))
    assert np.abs(restored * 255 - array).max() < 1


@pytest.mark.parametrize("source,error,words", [
    ("/no/such/photo.jpg", FileNotFoundError, "no image at"),
    (np.zeros((5, 5, 2), np.uint8), ValueError, "HxWx3"),
    (np.full((5, 5, 3), 2.0), ValueError, "[0, 1]"),
    (np.full((5, 5, 3), np.nan), ValueError, "NaN"),
    (12, TypeError, "path, a PIL image or a numpy array"),
])
def test_bad_sources(source, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        de.load_image(source)


def test_corrupt_image_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="not a readable image"):
        de.prepare_image(path)


@pytest.mark.parametrize("image,error,words", [
    (torch.zeros(1, 3, 64, 64), ValueError, "pass a list"),
    (torch.zeros(64, 64, 3), ValueError, "3xHxW"),
    (torch.zeros(3, 64, 64, dtype=torch.uint8), TypeError, "prepare_image"),
    (torch.zeros(3, 64, 64, dtype=torch.float64), TypeError, "image.to"),
    (torch.zeros(3, 16, 64), ValueError, "at least 32"),
    (torch.full((3, 64, 64), float("inf")), ValueError, "NaN or infinite"),
    (np.zeros((3, 64, 64), np.float32), TypeError, "not a tensor"),
])
def test_bad_images_get_clear_errors(tiny, image, error, words):
    with pytest.raises(error, match=words):
        tiny([image])


def test_empty_list():
    with pytest.raises(ValueError, match="no images"):
        ImageBatch.from_images([])


def test_padding_batch():
    batch = ImageBatch.from_images([random_image(40, 70), random_image(64, 50)])
    assert batch.tensors.shape == (2, 3, 64, 70)
    assert batch.sizes == [(40, 70), (64, 50)]
    assert not batch.mask[0, :40, :70].any() and batch.mask[0, 40:].all()
    assert not batch.mask[1, :, :50].any() and batch.mask[1, :, 50:].all()
    assert (batch.tensors[0, :, 40:] == 0).all()


def test_check_image_passes_good_image():
    check_image(random_image(32, 32))
