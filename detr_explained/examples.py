"""The two examples every chapter shares, made in one place so that numbers compare across chapters.

* :func:`photo_batch`: one batch of two real images of different sizes, cut from the one photo
  matplotlib ships (Grace Hopper): the portrait at shorter side 320, (3, 375, 320), and a
  landscape crop at shorter side 256, (3, 256, 409). Part I's chapters on the ResNet-50 model
  (random or official weights) all use it, so a Res5 grid or a padding mask in one chapter is
  the same in the next.
* :func:`book_scene`: the shipped trained model ``detr-tiny-synthetic`` traced on the held-out
  scene ``synthetic.BOOK_SCENE``, with its ground truth, as an ``explore.Traced``. It is
  introduced once, in ``book/00_meet_the_model.ipynb``; later chapters refer back to it.

Each call returns fresh tensors and a fresh model, so a student who edits them in one cell
changes nothing for the next call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from . import explore, synthetic
from .hub import build_model
from .preprocessing import load_image, prepare_image

# The photo matplotlib ships, and how the batch is cut from it.
PHOTO = "grace_hopper.jpg"
PORTRAIT_SHORTER = 320              # the whole photo, shorter side 320: (3, 375, 320)
LANDSCAPE_BOX = (0, 60, 512, 380)   # (left, top, right, bottom) of the crop in the 512 x 600 photo
LANDSCAPE_SHORTER = 256             # the crop at shorter side 256: (3, 256, 409)
# The trained model of the book and its held-out scene.
BOOK_MODEL = "detr-tiny-synthetic"


@dataclass
class PhotoBatch:
    """The book's photo batch (``book/01_backbone.ipynb`` onwards): the photo, the crop and the two
    normalised images made from them, in batch order (portrait first)."""
    photo: object                    # PIL image, 512 x 600
    crop: object                     # PIL image, the landscape crop
    images: list = field(default_factory=list)   # [(3, 375, 320), (3, 256, 409)]
    names: tuple = ("portrait", "landscape")


def photo_path() -> str:
    """The path of the photo matplotlib ships (``book/01_backbone.ipynb``)."""
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data(PHOTO, asfileobj=False))


def photo_batch() -> PhotoBatch:
    """The book's one batch of two real images of different sizes (``book/01_backbone.ipynb``):
    the portrait photo at shorter side 320 and a landscape crop at shorter side 256, both
    ImageNet-normalised by ``prepare_image``."""
    photo = load_image(photo_path())
    crop = photo.crop(LANDSCAPE_BOX)
    images = [prepare_image(photo, shorter=PORTRAIT_SHORTER),
              prepare_image(crop, shorter=LANDSCAPE_SHORTER)]
    return PhotoBatch(photo=photo, crop=crop, images=images)


def book_model():
    """A fresh copy of the book's trained model, ``detr-tiny-synthetic`` with its shipped weights,
    in eval mode (``book/00_meet_the_model.ipynb``)."""
    return build_model(BOOK_MODEL, pretrained=True).eval()


@dataclass
class BookScene:
    """The book's trained model on its held-out scene (``book/00_meet_the_model.ipynb``).

    model:  the trained ``DETRPanoptic`` (eval mode);
    scene:  the ``synthetic.Scene`` (image, ids, layout) of ``synthetic.BOOK_SCENE``;
    traced: ``explore.Traced``, the one trace every view and chapter reads (``traced.trace`` is
            the ``DETRTrace``, ``traced.result`` the merge at its default options).
    """
    model: object
    scene: synthetic.Scene
    traced: explore.Traced

    @property
    def trace(self):
        """The ``DETRTrace`` of the scene: every intermediate, named."""
        return self.traced.trace

    @property
    def truth(self) -> list:
        """The ground-truth segments (``segments_info``) of the scene."""
        return self.scene.segments_info()


def book_scene(model=None, index: Optional[int] = None) -> BookScene:
    """The book's trained model traced on its held-out scene, with the scene's ground truth
    (``book/00_meet_the_model.ipynb``).

    ``model``: a model to trace instead of a fresh :func:`book_model`; ``index``: another
    held-out scene instead of ``synthetic.BOOK_SCENE``.
    """
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValueError(f"index must be a held-out scene number (an int >= 0), got {index!r}")
    model = book_model() if model is None else model
    scene = synthetic.held_out_scene(synthetic.BOOK_SCENE if index is None else index)
    with torch.no_grad():
        traced = explore.trace_scene(model, scene)
    return BookScene(model=model, scene=scene, traced=traced)
