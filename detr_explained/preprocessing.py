"""From a photo to the padded batch DETR reads.

Explained in ``book/01_backbone.ipynb``: the official preprocessing (shorter side 800, longer
side at most 1333, ImageNet mean and std), and the padding of images of different sizes into
one batch with a mask that marks the padding.

Every kind of picture PIL opens, and every numpy image, either loads by a stated rule (see
``load_image``) or is refused with a message that says what was wrong and what to pass instead.
"""
from __future__ import annotations

import io
import numbers
import os
import sys
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Optional, Sequence, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError

# The official evaluation resizes the shorter side to 800 pixels, capping the longer at 1333.
SHORTER_SIDE = 800
MAX_LONGER_SIDE = 1333

# ImageNet statistics the ResNet backbone was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The backbone divides the image by 32. Below 32 pixels a side, Res5 is a single cell made mostly
# of the convolutions' zero padding, and the attention maps have one pixel: nothing to explain.
MIN_IMAGE_SIDE = 32

ImageLike = Union[str, os.PathLike, BinaryIO, Image.Image, np.ndarray]

# PIL's modes of 16-bit grey pixels (0..65535), in their byte orders.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# The EXIF tag that says how a camera held the photo (1: upright; 6: turned a quarter, ...).
_EXIF_ORIENTATION = 0x0112
# Modes with an alpha channel (La and RGBa store the colours multiplied by alpha).
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")

# ImageNet-normalised [0, 1] pixels lie within (0 - 0.485) / 0.229 = -2.12 and (1 - 0.406) / 0.225
# = 2.64; the thresholds of the unnormalised-input check sit outside that range, with a margin.
_NORMALISED_LOW = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
_NORMALISED_HIGH = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
_ABOVE_NORMALISED = 3.0     # all values >= 0 and some above this: 0..255 pixels
_RAW_SPREAD = 0.5           # all values in [0, 1] and a channel spread this wide: [0, 1] pixels
_FAR_OUTSIDE = 20.0         # values beyond +-20: normalised from 0..255 instead of [0, 1]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


class UnnormalisedImageWarning(UserWarning):
    """A model input that looks like raw pixels, not an ImageNet-normalised one (``book/01_backbone.ipynb``).

    ``check_image`` (and so every model call) warns when all values are >= 0 and some exceed 3
    (0..255 pixels), when all values lie in [0, 1] spread like pixels (pixels not normalised), or
    when values pass +-20. A normalised image of [0, 1] pixels lies within about -2.1 and 2.6, and
    an image of one colour is never flagged. Silence it for a deliberate input with
    ``warnings.filterwarnings("ignore", category=UnnormalisedImageWarning)``.
    """


# --------------------------------------------------------------------------------------------
# Loading: one rule per kind of picture
# --------------------------------------------------------------------------------------------

def load_image(source: ImageLike) -> Image.Image:
    """Open a path, open binary file, PIL image or numpy array as an RGB PIL image (``book/01_backbone.ipynb``).

    One rule per kind of picture; what no rule covers is refused with a message saying why:

    - EXIF orientation (phone photos) is applied first, so the image is upright as viewers show it.
    - Grey ("1", "L") is repeated to three channels; CMYK, YCbCr, HSV and LAB go through PIL's
      own conversion to RGB.
    - Transparency (LA, PA, RGBA, premultiplied La and RGBa, a palette's or a colour key's
      transparency) is composited onto white: dropping alpha would turn transparent pixels black.
    - 16-bit grey (modes I;16, I;16B, I;16L, I;16N; numpy uint16) is scaled by 255 / 65535, so
      32768 becomes 128.
    - Mode I (32-bit integers) holds 8-bit or 16-bit values: above 255, or from a PNG file (old
      Pillow opens 16-bit PNGs as I), it is read as 16-bit; within 0..255 as 8-bit, with a
      warning; negative or above 65535 it is refused.
    - Floats (mode F; numpy float16, float32, float64) must lie in [0, 1] and are scaled by 255;
      outside [0, 1], NaN or infinite is refused, with the values found.
    - numpy arrays are HxW, HxWx1, HxWx3 or HxWx4 (a 3xHxW array gets a hint to transpose), of
      dtype bool (False black, True white), uint8, uint16 or float; other integer dtypes are
      refused: cast to uint8 or uint16 to say which range the values use.
    - An image with a side of 0 pixels is refused.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no image at {path!r}: check the path")
        try:
            with Image.open(path) as opened:
                opened.load()
                file_format = opened.format
                image = _upright(opened)
                if image is opened:
                    image = opened.copy()  # closing the file frees the opened image's pixels
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(
                f"{path!r} is not a readable image ({err}); give a JPEG or PNG file"
            ) from err
        return _to_rgb(image, file_format)
    if isinstance(source, Image.Image):
        try:
            source.load()  # an Image.open()ed file is decoded only now
        except (OSError, SyntaxError) as err:
            raise ValueError(f"the PIL image cannot be decoded ({err}); is its file complete?") from err
        return _to_rgb(_upright(source), source.format)
    if isinstance(source, np.ndarray):
        return _to_rgb(_array_to_pil(source), None)
    if isinstance(source, torch.Tensor):
        raise TypeError(
            f"load_image takes photos, not tensors (got a tensor of shape {tuple(source.shape)}); "
            "a 3xHxW tensor that is already normalised goes to the model directly, and a tensor "
            "of pixels goes through load_image or prepare_image as a numpy array: "
            "tensor.permute(1, 2, 0).numpy() gives HxWx3"
        )
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError(
            "load_image got the bytes of a file; wrap them in a file object: "
            "load_image(io.BytesIO(data))"
        )
    if isinstance(source, io.TextIOBase):
        raise TypeError("the file was opened as text; open images in binary mode: open(path, 'rb')")
    if hasattr(source, "read"):  # an open binary file
        try:
            image = Image.open(source)
            image.load()
            file_format = image.format
            image = _upright(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(
                f"the file object is not a readable image ({err}); give an image file opened "
                "in binary mode, open(path, 'rb')"
            ) from err
        return _to_rgb(image, file_format)
    raise TypeError(
        f"expected a path, a PIL image or a numpy array (or a file opened with open(path, 'rb')), "
        f"got {type(source).__name__}"
    )


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (phone photos are stored sideways)."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return image  # upright already: no copy
    return ImageOps.exif_transpose(image)


def to_rgb(image: Image.Image, file_format: Optional[str] = None) -> Image.Image:
    """Any PIL image as an 8-bit RGB one, by the rules of ``load_image`` for each mode (16-bit and
    float images scaled, transparency on white), but without turning it by its EXIF orientation:
    datasets such as COCO label the pixels as stored (``book/01_backbone.ipynb``)."""
    return _to_rgb(image, file_format if file_format is not None else image.format)


def _to_rgb(image: Image.Image, file_format: Optional[str]) -> Image.Image:
    """Any PIL image as an RGB one, by the rules of ``load_image``."""
    if image.width == 0 or image.height == 0:
        raise ValueError(
            f"the image is {image.width}x{image.height} pixels (width x height): it is empty; "
            "give an image of at least 1x1 pixels"
        )
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        image = _deep_to_grey(image, file_format)  # "L", or "LA" with a transparency key
    if image.mode == "La":
        image = image.convert("LA")  # undo the premultiplication
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:
        if image.mode == "LAB":  # Pillow versions without a built-in LAB -> RGB conversion
            return _lab_to_rgb(image)
        raise ValueError(
            f"PIL cannot convert mode {image.mode!r} to RGB ({err}); convert the image to "
            "'RGB' yourself, or pass its pixels as an HxWx3 uint8 numpy array"
        ) from err


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    """A LAB image as sRGB, through PIL's colour management (littlecms)."""
    from PIL import ImageCms

    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                        ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(image, transform)


def _deep_to_grey(image: Image.Image, file_format: Optional[str]) -> Image.Image:
    """A 16-bit (I;16*), 32-bit integer (I) or float (F) image as 8-bit grey ("L", or "LA")."""
    values = np.asarray(image)  # (H, W) uint16, int32 or float32
    mode = image.mode
    if mode == "F":
        grey = _floats_to_bytes(values, "a float (mode F) image")
    elif mode in _SIXTEEN_BIT_MODES:
        grey = _sixteen_to_eight(values)
    else:  # mode I
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise ValueError(
                f"a 32-bit integer (mode I) image must hold 8-bit (0..255) or 16-bit (0..65535) "
                f"pixels; this one has values in [{low}, {high}]; scale it to [0, 1] yourself and "
                "pass the floats: values = np.asarray(image); "
                "load_image((values - values.min()) / np.ptp(values))"
            )
        if high > 255 or file_format == "PNG":
            grey = _sixteen_to_eight(values)
        else:
            if high > 0:
                warnings.warn(
                    "a mode I (32-bit integer) image with values within 0..255 is read as 8-bit "
                    "pixels; if they are 16-bit pixels (a very dark 16-bit image), pass "
                    "np.asarray(image).astype(np.uint16) instead, and to silence this for 8-bit "
                    "pixels pass image.convert('L')",
                    UserWarning, stacklevel=_outside_stacklevel(),
                )
            grey = values.astype(np.uint8)
    key = image.info.get("transparency")
    if isinstance(key, (int, float)):  # a colour key: pixels of this value are transparent
        alpha = np.where(values == key, 0, 255).astype(np.uint8)  # (H, W)
        return Image.fromarray(np.stack([grey, alpha], axis=-1))  # (H, W, 2) -> LA
    return Image.fromarray(grey)


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """16-bit pixels (0..65535) as 8-bit ones: scaled by 255 / 65535 and rounded."""
    return np.round(values * (255 / 65535)).astype(np.uint8)


def _floats_to_bytes(values: np.ndarray, what: str) -> np.ndarray:
    """Float pixels in [0, 1] as 8-bit ones (times 255, rounded); anything else is refused."""
    if not np.isfinite(values).all():
        raise ValueError(
            f"{what} has NaN or infinite values; replace them (np.nan_to_num) or fix where "
            "they came from"
        )
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"{what} must hold values in [0, 1]; this one has values in [{low:.6g}, {high:.6g}]: "
            "divide 0..255 data by 255 (0..65535 data by 65535), or clip small overshoots "
            "with np.clip(values, 0, 1)"
        )
    wide = values.astype(np.float64 if values.dtype.itemsize > 4 else np.float32)
    return np.round(wide * 255).astype(np.uint8)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """A numpy image as an 8-bit PIL image ("L", "RGB" or "RGBA"), by the rules of ``load_image``."""
    shape = tuple(array.shape)
    allowed = "a numpy image must be HxW, HxWx1, HxWx3 or HxWx4"
    if array.ndim == 3 and shape[2] not in (1, 2, 3, 4) and shape[0] in (1, 3, 4):
        raise ValueError(
            f"{allowed}; got shape {shape}, which looks channels-first (CxHxW): "
            "pass array.transpose(1, 2, 0)"
        )
    if array.ndim == 4 and shape[0] == 1:
        raise ValueError(f"{allowed}; got shape {shape}, a batch of one? pass array[0]")
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 3, 4)):
        hint = ""
        if array.ndim == 3 and shape[2] == 2:
            hint = " (grey and alpha? pass np.dstack([grey, grey, grey, alpha]), HxWx4)"
        raise ValueError(f"{allowed}; got shape {shape}{hint}")
    if array.size == 0:
        raise ValueError(
            f"the numpy image has shape {shape}: it is empty; give at least 1x1 pixels"
        )
    dtype = array.dtype
    if dtype.kind == "b":
        pixels = np.where(array, 255, 0).astype(np.uint8)
    elif dtype == np.uint8:
        pixels = array
    elif dtype.kind == "u" and dtype.itemsize == 2:
        pixels = _sixteen_to_eight(array)
    elif dtype.kind in "ui":
        raise TypeError(
            f"a numpy image of dtype {dtype} does not say whether its values (in "
            f"[{array.min()}, {array.max()}]) are 8-bit or 16-bit pixels; cast it: "
            "array.astype(np.uint8) for 0..255, array.astype(np.uint16) for 0..65535"
        )
    elif dtype.kind == "f":
        pixels = _floats_to_bytes(array, "a float numpy image")
    else:
        raise TypeError(
            f"a numpy image must be bool, uint8, uint16 or float in [0, 1]; got dtype {dtype}"
        )
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]                             # (H, W, 1) -> (H, W)
    return Image.fromarray(np.ascontiguousarray(pixels))     # L, RGB or RGBA


# --------------------------------------------------------------------------------------------
# Resizing and normalising
# --------------------------------------------------------------------------------------------

def _check_positive_int(name: str, value, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive int, got {value!r} ({type(value).__name__}); {example}"
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}; {example}")


def _check_resize_options(shorter, max_longer) -> None:
    _check_positive_int("shorter", shorter, f"pass e.g. shorter={SHORTER_SIDE}")
    if max_longer is not None:
        _check_positive_int("max_longer", max_longer,
                            f"pass e.g. max_longer={MAX_LONGER_SIDE}, or None for no cap")


def resized_size(width: int, height: int, shorter: int = SHORTER_SIDE,
                 max_longer: int | None = MAX_LONGER_SIDE) -> tuple[int, int]:
    """(height, width) after the official resize: shorter side to ``shorter``, longer capped.

    A 640x480 photo becomes 800x1066 (the fraction is dropped, as the official code does).
    ``width``, ``height`` and ``shorter`` are positive ints; ``max_longer`` is an int at least
    ``shorter``, or None for no cap. An image so elongated that the cap would leave its shorter
    side under one pixel is refused.

    Explained in ``book/01_backbone.ipynb``.
    """
    _check_positive_int("width", width, "the image must have at least one pixel a side")
    _check_positive_int("height", height, "the image must have at least one pixel a side")
    _check_resize_options(shorter, max_longer)
    short, long = min(width, height), max(width, height)
    if max_longer is not None and long / short * shorter > max_longer:
        shorter = int(round(max_longer * short / long))
    if short == shorter:
        return height, width
    if width < height:
        size = int(shorter * height / width), shorter
    else:
        size = shorter, int(shorter * width / height)
    if min(size) < 1:
        raise ValueError(
            f"a {width}x{height} (width x height) image is too elongated for max_longer="
            f"{max_longer}: its shorter side would become {min(size)} pixels; crop it into less "
            "elongated pieces, or pass a larger max_longer"
        )
    return size


def prepare_image(source: ImageLike, shorter: int = SHORTER_SIDE,
                  max_longer: int | None = MAX_LONGER_SIDE) -> torch.Tensor:
    """A photo as the normalised 3xHxW float tensor the official preprocessing makes.

    Loads with ``load_image`` (its rules say how each kind of picture becomes RGB), resizes with
    PIL's bilinear filter so the shorter side is ``shorter`` (the longer at most ``max_longer``;
    None: no cap), scales to [0, 1] and normalises with ImageNet mean and std.
    Explained in ``book/01_backbone.ipynb``.
    """
    _check_resize_options(shorter, max_longer)  # before opening anything
    image = load_image(source)
    height, width = resized_size(image.width, image.height, shorter, max_longer)
    if min(height, width) < MIN_IMAGE_SIDE <= shorter:
        raise ValueError(
            f"the image is {image.width}x{image.height} (width x height), so elongated that "
            f"capping its longer side at {max_longer} leaves {min(height, width)} pixels on the "
            f"shorter side, below the {MIN_IMAGE_SIDE} the backbone needs; crop it into less "
            "elongated pieces, or pass max_longer=None"
        )
    image = image.resize((width, height), Image.BILINEAR)
    tensor = TF.to_tensor(image)                              # (3, H, W) in [0, 1]
    return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo ImageNet normalisation: a 3xHxW tensor to an HxWx3 array in [0, 1] for plotting.

    A 1xHxW tensor is taken as grey. Explained in ``book/01_backbone.ipynb``.
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"denormalize takes a 3xHxW tensor, got {type(image).__name__}; "
            "convert an array with torch.as_tensor(array)"
        )
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        hint = " (a batch? denormalize one image: batch[i])" if image.dim() == 4 else ""
        raise ValueError(f"denormalize takes a 3xHxW tensor, got shape {tuple(image.shape)}{hint}")
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = (image.detach().cpu().float() * std + mean).clamp(0, 1)  # (3, H, W)
    return pixels.permute(1, 2, 0).numpy()                            # (H, W, 3)


# --------------------------------------------------------------------------------------------
# Checking model inputs
# --------------------------------------------------------------------------------------------

def _outside_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package and torch.

    A warning from inside ``model(images)`` is then reported at the reader's own line.
    """
    frame, level = sys._getframe(1), 1
    inside = (_PACKAGE_DIR + os.sep, _TORCH_DIR + os.sep)
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _unnormalised_reason(low: Sequence[float], high: Sequence[float]) -> Optional[str]:
    """Why per-channel minima ``low`` and maxima ``high`` look unnormalised, or None.

    An image of one colour has no spread in any channel and is never taken for [0, 1] pixels.
    """
    smallest, largest = min(low), max(high)
    if smallest >= 0 and largest > _ABOVE_NORMALISED:
        return (f"looks like 0..255 pixel values (all values >= 0, some above {_ABOVE_NORMALISED:g})")
    spread = max(h - l for l, h in zip(low, high))
    if smallest >= 0 and largest <= 1 and spread >= _RAW_SPREAD:
        return ("looks like [0, 1] pixels that were not normalised with the ImageNet mean and std "
                "(all values in [0, 1], spread like pixels)")
    if max(-smallest, largest) > _FAR_OUTSIDE:
        return (f"has values beyond +-{_FAR_OUTSIDE:g}, far outside the {_NORMALISED_LOW:.1f}.."
                f"{_NORMALISED_HIGH:.1f} of normalised [0, 1] pixels (normalised 0..255 pixels?)")
    return None


def check_image(image, index: int = 0, dtype: torch.dtype = torch.float32) -> None:
    """Raise a clear error unless ``image`` is a finite 3xHxW float tensor the backbone can encode.

    Warns (``UnnormalisedImageWarning``) when it looks like pixels that were never normalised.
    Explained in ``book/01_backbone.ipynb``.
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}")
    where = f"image {index}"
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"{where} is a {type(image).__name__}, not a tensor; turn photos, arrays and paths "
            "into tensors with detr_explained.prepare_image()"
        )
    if image.dim() != 3 or image.shape[0] != 3:
        hint = ""
        if image.dim() == 4:
            hint = " (a batch? pass a list of 3xHxW tensors)"
        elif image.dim() == 3 and image.shape[-1] == 3:
            hint = " (channels last? image.permute(2, 0, 1) makes it 3xHxW)"
        elif image.dim() == 3 and image.shape[0] == 1:
            hint = " (grey? prepare_image() repeats grey photos to 3 channels)"
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
    extremes = torch.cat([image.detach().amin(dim=(1, 2)), image.detach().amax(dim=(1, 2))])
    values = extremes.float().tolist()  # per channel: 3 minima, then 3 maxima; NaN propagates
    if not all(abs(v) < float("inf") for v in values):  # False for NaN and +-inf
        raise ValueError(f"{where} has NaN or infinite values")
    reason = _unnormalised_reason(values[:3], values[3:])
    if reason is not None:
        warnings.warn(
            f"{where} {reason}; the model expects ImageNet-normalised images: make them with "
            "detr_explained.prepare_image(photo), or normalise [0, 1] pixels with "
            "torchvision.transforms.functional.normalize(image, IMAGENET_MEAN, IMAGENET_STD) "
            "(from detr_explained.preprocessing; divide 0..255 pixels by 255 first)",
            UnnormalisedImageWarning, stacklevel=_outside_stacklevel(),
        )


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
        elif isinstance(images, (np.ndarray, Image.Image, str, bytes, os.PathLike)):
            raise TypeError(
                f"expected a list of 3xHxW tensors, got a {type(images).__name__}; turn photos, "
                "arrays and paths into tensors with detr_explained.prepare_image()"
            )
        else:
            try:
                images = list(images)
            except TypeError:
                raise TypeError(
                    f"expected a list of 3xHxW tensors, got {type(images).__name__}"
                ) from None
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
