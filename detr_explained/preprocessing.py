"""From a photo to the padded batch DETR reads.

Explained in ``book/01_backbone.ipynb``: the official preprocessing (shorter side 800, longer
side at most 1333, ImageNet mean and std), and the padding of images of different sizes into
one batch with a mask that marks the padding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

# The official evaluation resizes the shorter side to 800 pixels, capping the longer at 1333.
SHORTER_SIDE = 800
MAX_LONGER_SIDE = 1333

# ImageNet statistics the ResNet backbone was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The backbone divides the image by 32. Below 32 pixels a side, Res5 is a single cell made mostly
# of the convolutions' zero padding, and the attention maps have one pixel: nothing to explain.
MIN_IMAGE_SIDE = 32

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


def load_image(source: ImageLike) -> Image.Image:
    """Open a path, open file, PIL image or numpy array as an RGB PIL image (``book/01_backbone.ipynb``).

    Grayscale is repeated to three channels; RGBA is composited onto white (the alpha channel
    would otherwise be dropped silently, turning transparent pixels black).
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no image at {path!r}: check the path")
        try:
            with Image.open(path) as opened:
                image = opened.copy()
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(
                f"{path!r} is not a readable image ({err}); give a JPEG or PNG file"
            ) from err
    elif isinstance(source, Image.Image):
        image = source
    elif hasattr(source, "read"):  # an open binary file
        try:
            image = Image.open(source)
            image.load()
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"the file object is not a readable image ({err})") from err
    elif isinstance(source, np.ndarray):
        image = _array_to_pil(source)
    else:
        raise TypeError(
            f"expected a path, a PIL image or a numpy array, got {type(source).__name__}; "
            "a 3xHxW tensor that is already normalised can go to the model directly"
        )
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"a numpy image must be HxW, HxWx1, HxWx3 or HxWx4; got shape {array.shape}"
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"a numpy image must be uint8 or float in [0, 1]; got {array.dtype}")
        if not np.isfinite(array).all():
            raise ValueError("the numpy image has NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"a float numpy image must be in [0, 1]; got values in [{array.min():.3g}, "
                f"{array.max():.3g}] (divide 0..255 data by 255)"
            )
        array = np.round(array * 255).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    mode = "RGBA" if array.shape[2] == 4 else "RGB"
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def resized_size(width: int, height: int, shorter: int = SHORTER_SIDE,
                 max_longer: int | None = MAX_LONGER_SIDE) -> tuple[int, int]:
    """(height, width) after the official resize: shorter side to ``shorter``, longer capped.

    A 640x480 photo becomes 800x1066 (the fraction is dropped, as the official code does).

    Explained in ``book/01_backbone.ipynb``.
    """
    short, long = min(width, height), max(width, height)
    if max_longer is not None and long / short * shorter > max_longer:
        shorter = int(round(max_longer * short / long))
    if short == shorter:
        return height, width
    if width < height:
        return int(shorter * height / width), shorter
    return shorter, int(shorter * width / height)


def prepare_image(source: ImageLike, shorter: int = SHORTER_SIDE,
                  max_longer: int | None = MAX_LONGER_SIDE) -> torch.Tensor:
    """A photo as the normalised 3xHxW float tensor the official preprocessing makes.

    Resizes with PIL's bilinear filter so the shorter side is ``shorter`` (the longer at most
    ``max_longer``), scales to [0, 1] and normalises with ImageNet mean and std.
    Explained in ``book/01_backbone.ipynb``.
    """
    image = load_image(source)
    height, width = resized_size(image.width, image.height, shorter, max_longer)
    image = image.resize((width, height), Image.BILINEAR)
    tensor = TF.to_tensor(image)                              # (3, H, W) in [0, 1]
    return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo ImageNet normalisation: a 3xHxW tensor to an HxWx3 array in [0, 1] for plotting.

    Explained in ``book/01_backbone.ipynb``.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = (image.detach().cpu().float() * std + mean).clamp(0, 1)  # (3, H, W)
    return pixels.permute(1, 2, 0).numpy()                            # (H, W, 3)


def check_image(image, index: int = 0, dtype: torch.dtype = torch.float32) -> None:
    """Raise a clear error unless ``image`` is a finite 3xHxW float tensor the backbone can encode.

    Explained in ``book/01_backbone.ipynb``.
    """
    where = f"image {index}"
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"{where} is a {type(image).__name__}, not a tensor; turn photos, arrays and paths "
            "into tensors with detr_explained.prepare_image()"
        )
    if image.dim() != 3 or image.shape[0] != 3:
        hint = " (a batch? pass a list of 3xHxW tensors)" if image.dim() == 4 else ""
        raise ValueError(f"{where} must have shape 3xHxW, got {tuple(image.shape)}{hint}")
    if not image.is_floating_point():
        raise TypeError(
            f"{where} has dtype {image.dtype}; the model needs normalised floats "
            "(use detr_explained.prepare_image(), which scales to [0, 1] and normalises)"
        )
    if image.dtype != dtype:
        raise TypeError(
            f"{where} has dtype {image.dtype} but the model's weights are {dtype}; "
            f"convert with image.to({dtype})"
        )
    height, width = image.shape[-2:]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{where} is {height}x{width}: each side must be at least {MIN_IMAGE_SIDE} pixels, "
            "since the backbone divides it by 32; resize it (prepare_image makes the shorter side 800)"
        )
    if not torch.isfinite(image).all():
        raise ValueError(f"{where} has NaN or infinite values")


@dataclass
class ImageBatch:
    """Images of different sizes padded into one tensor (the official NestedTensor).

    tensors: (B, 3, H, W) with H, W the largest height and width in the batch, zero-padded
             at the bottom and right.
    mask:    (B, H, W) bool, True where a pixel is padding.
    sizes:   the (h, w) of each image before padding.

    Explained in ``book/01_backbone.ipynb``.
    """

    tensors: torch.Tensor
    mask: torch.Tensor
    sizes: list[tuple[int, int]]

    @classmethod
    def from_images(cls, images: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32):
        """Check and pad a list of 3xHxW tensors (``book/01_backbone.ipynb``)."""
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                images = [images]
            elif images.dim() == 4:
                images = list(images)
            else:
                raise ValueError(
                    f"expected a list of 3xHxW tensors, got one tensor of shape {tuple(images.shape)}"
                )
        if len(images) == 0:
            raise ValueError("no images given: pass a list of at least one 3xHxW tensor")
        for i, image in enumerate(images):
            check_image(image, i, dtype)
        height = max(image.shape[1] for image in images)
        width = max(image.shape[2] for image in images)
        first = images[0]
        tensors = first.new_zeros((len(images), 3, height, width))                # (B, 3, H, W)
        mask = torch.ones((len(images), height, width), dtype=torch.bool, device=first.device)  # (B, H, W)
        for i, image in enumerate(images):
            h, w = image.shape[1:]
            tensors[i, :, :h, :w] = image
            mask[i, :h, :w] = False
        return cls(tensors, mask, [tuple(image.shape[1:]) for image in images])
