"""Stage 5: the pixel-wise argmax merge, from N mask logits to one panoptic map.

Explained in ``book/05_argmax_merge.ipynb``. The official name is PostProcessPanoptic.

1. Keep the queries whose most likely class (softmax over all C+1 outputs, "no object"
   included) is a real class with probability above the threshold (0.85).
2. Bring the kept mask logits from H/4 to the image size (bilinear), cropping batch padding.
3. Give every pixel to the kept query with the highest mask logit: the argmax. (The official
   code takes a softmax over queries first; that changes no argmax, so it is skipped here.)
4. Stuff (sky, grass, ...) predicted by several queries becomes one segment per class.
5. Segments of at most 4 pixels are dropped and their pixels re-assigned by a new argmax
   among the remaining queries, until none is that small.
6. Encode in the COCO panoptic format: a PNG whose colour is the segment id
   (id = R + 256 G + 256^2 B) and ``segments_info`` with category, isthing, area and bbox.

Fixes of the official post-processor (detr==0.1.4), explained in
``book/appendix_side_topics.ipynb``: no crash when no query is kept (the whole image is VOID);
batch padding is cropped before resizing (the official resize stretches padded images); segment
ids start at 1, since id 0 means VOID in the COCO panoptic format (the official ids start at 0:
legal while id 0 is listed in segments_info, but fragile).

Stuff merging (``stuff_merge``): the official code relabels the extra stuff queries to the first
one of their class, but then finds those extra queries have area 0, removes them and re-runs the
argmax *without* merging: their pixels go to whichever remaining query scores highest, often a
thing or another class. So its merge is undone. ``"union"`` (the default) does what the merge is
for: all pixels of the queries of one stuff class form one segment, and small-segment removal
looks at that segment's whole area. ``"official"`` reproduces the official result exactly, for
comparison.
"""
from __future__ import annotations

import io
import math
import numbers
import operator
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checks import whole_number
from .config import COCO_LAST_THING_ID, OFFICIAL_KEEP_THRESHOLD

# A query is kept when its best real class has softmax probability above this: the official
# value. A model carries its own in config.keep_threshold (detr_explained.config.keep_threshold),
# which the functions that are given a model or a trace use by default.
KEEP_THRESHOLD = OFFICIAL_KEEP_THRESHOLD
# Segments with this many pixels or fewer are removed and their pixels re-assigned.
MAX_REMOVED_AREA = 4
# Segment id of unlabelled pixels in the COCO panoptic format.
VOID_ID = 0
# A panoptic PNG holds a segment id in its three 8-bit colour channels: ids are below 256^3.
ID_LIMIT = 256 ** 3
# The two ways of merging the queries of one stuff class (see the module docstring).
STUFF_MERGES = ("union", "official")

IsThing = Union[Callable[[int], bool], dict, Sequence[bool], None]


def id2rgb(id_map) -> np.ndarray:
    """Segment ids (H, W) -> the COCO panoptic PNG colours (H, W, 3): id = R + 256 G + 256^2 B.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    ids = np.asarray(id_map, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= ID_LIMIT):
        raise ValueError(f"segment ids must be from 0 to {ID_LIMIT - 1} to fit a PNG's three 8-bit "
                         f"channels; got ids from {ids.min()} to {ids.max()}")
    return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2 % 256], axis=-1).astype(np.uint8)


def rgb2id(rgb) -> np.ndarray:
    """COCO panoptic PNG colours (H, W, 3) -> segment ids (H, W); an alpha channel, (H, W, 4), is
    ignored.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 1 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected colours of shape (H, W, 3), got shape {rgb.shape}; an RGB PNG read "
                         "with np.asarray(Image.open(path).convert('RGB')) has it")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 ** 2 * rgb[..., 2]


def coco_is_thing(category_id: int) -> bool:
    """The official hub models' rule: COCO ids up to 90 are things, higher ids are stuff.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    return category_id <= COCO_LAST_THING_ID


# ----------------------------------------------------------------------------------------------
# Checking the arguments where they enter
# ----------------------------------------------------------------------------------------------

def check_threshold(threshold) -> float:
    """The class-score threshold as a float, after checking that it is a number from 0 up to (not
    including) 1, as the commands' ``--threshold`` is (``book/05_argmax_merge.ipynb``). A query is
    kept when its score is above it; scores are softmax probabilities, never above 1, so a
    threshold of 1 or more would keep no query."""
    if isinstance(threshold, torch.Tensor) and threshold.numel() == 1:
        threshold = threshold.item()
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number from 0 up to (not including) 1 (default "
                        f"{KEEP_THRESHOLD}), got {type(threshold).__name__} {threshold!r}")
    value = float(threshold)
    if not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"threshold={threshold!r} is not a class-score threshold: give a number from 0 up "
                         f"to (not including) 1, e.g. {KEEP_THRESHOLD} (the official value); scores are "
                         "probabilities, so 1 or more would keep no query, and 0 keeps every query with "
                         "a real class")
    return value


def check_is_thing(is_thing: IsThing) -> None:
    """Raise TypeError unless ``is_thing`` is one of the accepted forms: a function
    category id -> bool, a dict {category id: bool}, a list (or 1-D array) indexed by category id,
    or None for the COCO rule (ids <= 90 are things) (``book/05_argmax_merge.ipynb``)."""
    if is_thing is None or callable(is_thing) or isinstance(is_thing, Mapping):
        return
    if isinstance(is_thing, (str, bytes)) or not (hasattr(is_thing, "__getitem__") and hasattr(is_thing, "__len__")):
        raise TypeError(
            f"is_thing must be a function category_id -> bool, a dict {{category_id: bool}}, a list indexed "
            f"by category id, or None (COCO: ids <= {COCO_LAST_THING_ID} are things); got "
            f"{type(is_thing).__name__} {is_thing!r:.60}")
    if isinstance(is_thing, (np.ndarray, torch.Tensor)) and is_thing.ndim != 1:
        raise TypeError(f"is_thing as an array must be 1-D (one value per category id), got shape "
                        f"{tuple(is_thing.shape)}")


def check_stuff_merge(stuff_merge) -> None:
    """Raise ValueError unless ``stuff_merge`` is "union" or "official" (``book/05_argmax_merge.ipynb``)."""
    if not (isinstance(stuff_merge, str) and stuff_merge in STUFF_MERGES):
        raise ValueError(f"stuff_merge must be 'union' or 'official', got {stuff_merge!r}")


def check_max_removed_area(max_removed_area) -> int:
    """The small-segment rule's largest removed area, a whole number of pixels from 0 (0: no
    segment is removed); returns it as an int (``book/05_argmax_merge.ipynb``)."""
    return whole_number(max_removed_area, "max_removed_area", 0,
                        f"segments of at most this many pixels are removed: {MAX_REMOVED_AREA} (the official "
                        "rule) or 0 to keep every segment")


def check_merge_options(threshold=KEEP_THRESHOLD, is_thing: IsThing = None, stuff_merge="union") -> float:
    """Check the options ``merge_panoptic`` and ``segment`` share, where a command or a caller
    takes them in; returns the threshold as a float (``book/05_argmax_merge.ipynb``)."""
    check_is_thing(is_thing)
    check_stuff_merge(stuff_merge)
    return check_threshold(threshold)


def check_size(size, what: str = "size") -> tuple[int, int]:
    """``size`` as a (height, width) pair of ints of at least 1 pixel, or a clear error naming
    ``what`` (``book/05_argmax_merge.ipynb``)."""
    try:
        pair = tuple(size)
    except TypeError:
        raise TypeError(f"{what} must be a (height, width) pair, got {type(size).__name__} {size!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{what} must be a (height, width) pair, got {len(pair)} values: {size!r}")
    if any(isinstance(v, bool) for v in pair):
        raise TypeError(f"{what} = {size!r}: height and width must be whole numbers of pixels, not True/False")
    try:
        height, width = (operator.index(v) for v in pair)
    except TypeError:
        raise TypeError(f"{what} = {size!r}: height and width must be whole numbers of pixels "
                        "(ints), e.g. (480, 640)") from None
    if height < 1 or width < 1:
        raise ValueError(f"{what} = {(height, width)}: height and width must be at least 1 pixel")
    return height, width


def _check_sizes(sizes, what: str, count: int) -> list[tuple[int, int]]:
    """One (height, width) per image of the batch."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"{what} must be a list of (height, width) pairs, one per image, got "
                        f"{type(sizes).__name__} {sizes!r:.60}")
    if len(sizes) != count:
        raise ValueError(f"got {len(sizes)} {what} for a batch of {count} images: give one (height, width) "
                         "per image, in the batch's order")
    return [check_size(size, f"{what}[{i}]") for i, size in enumerate(sizes)]


def _check_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """pred_logits (B, N, C+1) and pred_masks (B, N, h, w) of a model's outputs, checked."""
    if not isinstance(outputs, Mapping):
        raise TypeError(f"outputs must be the dict a DETRPanoptic returns (model(images)), with "
                        f"'pred_logits' and 'pred_masks'; got {type(outputs).__name__}")
    missing = [key for key in ("pred_logits", "pred_masks") if key not in outputs]
    if missing:
        hint = (" (a forward with select= computes masks of the matched queries only: call model(images) "
                "without it)" if "selected_masks" in outputs else
                " (a box-only DETR has no masks: use a DETRPanoptic, e.g. build_model('detr-r50-panoptic'))")
        raise ValueError(f"outputs lack {missing}; they have {sorted(outputs)}{hint}")
    logits, masks = outputs["pred_logits"], outputs["pred_masks"]
    for key, value, dims, shape in (("pred_logits", logits, 3, "(B, N, C+1)"),
                                    ("pred_masks", masks, 4, "(B, N, H/4, W/4)")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"outputs[{key!r}] must be a tensor {shape}, got {type(value).__name__}")
        if value.dim() != dims:
            raise ValueError(f"outputs[{key!r}] must have shape {shape}, got {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"outputs[{key!r}] must hold floats (logits), got {value.dtype}")
    if logits.shape[:2] != masks.shape[:2]:
        raise ValueError(f"pred_logits {tuple(logits.shape)} and pred_masks {tuple(masks.shape)} disagree on "
                         "the batch size B or the number of queries N: pass outputs of one forward pass")
    if logits.shape[0] == 0:
        raise ValueError("the outputs hold a batch of 0 images: nothing to merge")
    if logits.shape[-1] < 2:
        raise ValueError(f"pred_logits has {logits.shape[-1]} output per query; it needs at least one class "
                         "and the last, 'no object' one")
    if 0 in masks.shape[-2:]:
        raise ValueError(f"pred_masks of shape {tuple(masks.shape)} have no pixels")
    return logits.detach(), masks.detach()


def _check_finite_logits(logits: torch.Tensor) -> None:
    """Refuse class logits (B, N, C+1) with NaN or inf: such a query's score is NaN, never
    above the threshold, so a broken model would look like one that sees nothing."""
    broken = (~torch.isfinite(logits)).flatten(1).any(1)                   # (B,)
    if bool(broken.any()):
        raise ValueError(
            f"pred_logits of image(s) {torch.nonzero(broken).flatten().tolist()} hold NaN or infinite values: "
            "the model's weights or the image are broken. Check the weights with "
            "hub.check_finite(model.state_dict()) and the image with torch.isfinite(image).all(); a float16 "
            "model can overflow: run it as model.float()")


def _is_thing_function(is_thing: IsThing) -> Callable[[int], bool]:
    """is_thing as a function that answers for a category id or says clearly that it cannot."""
    check_is_thing(is_thing)
    if is_thing is None:
        return coco_is_thing
    if callable(is_thing):
        def ask(category_id: int):
            try:
                return is_thing(category_id)
            except LookupError as err:
                raise ValueError(f"is_thing({category_id}) raised {type(err).__name__} {err}: the function "
                                 "must answer for every category id the model predicts") from err
        return ask
    if isinstance(is_thing, Mapping):
        def look_up(category_id: int) -> bool:
            try:
                return bool(is_thing[category_id])  # a defaultdict answers for any id
            except KeyError:
                known = sorted(is_thing, key=str)
                raise ValueError(
                    f"is_thing has no entry for category id {category_id}, which the model predicts "
                    f"(its keys: {known[:12]}{' ...' if len(known) > 12 else ''}); give an entry for "
                    "every category id the model can predict, 0 to C-1 for C classes, or a function") from None
        return look_up

    def index(category_id: int) -> bool:
        if not 0 <= category_id < len(is_thing):
            raise ValueError(
                f"is_thing has {len(is_thing)} entries (category ids 0 to {len(is_thing) - 1}) but the "
                f"model predicts category id {category_id}: give one entry for every category id the "
                "model can predict, 0 to C-1 for C classes")
        return bool(is_thing[category_id])
    return index


@dataclass
class PanopticResult:
    """One image's panoptic segmentation.

    id_map:        (H, W) int64 tensor, the segment id of each pixel (0 = VOID).
    segments_info: COCO panoptic ``segments_info``: per segment "id", "category_id", "isthing",
                   "area", "bbox" [x, y, w, h], "iscrowd", plus "score" and "queries" (the
                   query indices that made it).

    Explained in ``book/05_argmax_merge.ipynb``.
    """

    id_map: torch.Tensor
    segments_info: list = field(default_factory=list)

    @property
    def png(self) -> bytes:
        """The id map as a COCO panoptic PNG (``png_string`` in the official output)."""
        with io.BytesIO() as buffer:
            Image.fromarray(id2rgb(self.id_map.numpy())).save(buffer, format="PNG")
            return buffer.getvalue()

    def category_map(self) -> torch.Tensor:
        """(H, W) category id of each pixel, -1 for VOID."""
        largest = max([int(self.id_map.max()) if self.id_map.numel() else 0]
                      + [int(s["id"]) for s in self.segments_info])
        lookup = torch.full((largest + 1,), -1, dtype=torch.long)    # (largest id + 1,)
        for segment in self.segments_info:
            lookup[segment["id"]] = segment["category_id"]
        return lookup[self.id_map]


def merge_panoptic(outputs: dict, sizes: Sequence[tuple[int, int]],
                   target_sizes: Optional[Sequence[tuple[int, int]]] = None,
                   threshold: float = KEEP_THRESHOLD, is_thing: IsThing = None,
                   stuff_merge: str = "union",
                   max_removed_area: int = MAX_REMOVED_AREA) -> list[PanopticResult]:
    """Model outputs -> one PanopticResult per image (``book/05_argmax_merge.ipynb``).

    outputs:      the model's dict: pred_logits (B, N, C+1) and pred_masks (B, N, H/4, W/4).
    sizes:        each image's (h, w) as it entered the model, before batch padding
                  (``ImageBatch.sizes``).
    target_sizes: the (h, w) to return each map at (e.g. the original photo); default ``sizes``.
    threshold:    keep a query whose best real class has a softmax score above this, a number
                  from 0 up to (not including) 1 (default 0.85, the official value).
    is_thing:     category id -> bool (a function, dict or list); default: COCO ids <= 90.
    stuff_merge:  "union" (default) or "official"; see the module docstring.
    max_removed_area: segments of at most this many pixels are removed (default 4, the official
                  rule); 0 turns the rule off.

    Arguments are checked where they enter: a wrong type raises TypeError, a wrong value or a
    length that does not match the batch ValueError, each saying what to pass instead. Outputs
    with NaN or infinite values are refused (a broken model would otherwise look like one that
    sees nothing).
    """
    threshold = check_merge_options(threshold, is_thing, stuff_merge)
    max_removed_area = check_max_removed_area(max_removed_area)
    logits, masks = _check_outputs(outputs)                            # (B, N, C+1), (B, N, h, w)
    sizes = _check_sizes(sizes, "sizes", logits.shape[0])
    target_sizes = sizes if target_sizes is None else _check_sizes(target_sizes, "target_sizes", len(sizes))
    _check_finite_logits(logits)
    padded = _padded_size(sizes)
    results = []
    for b in range(logits.shape[0]):
        scores, labels, kept = select_queries(logits[b], threshold)
        results.append(merge_image(masks[b, kept], scores[kept], labels[kept], kept, sizes[b],
                                   padded, target_sizes[b], is_thing, stuff_merge, max_removed_area))
    return results


def _padded_size(sizes) -> tuple[int, int]:
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def select_queries(logits: torch.Tensor, threshold: float = KEEP_THRESHOLD):
    """Scores and labels of N queries (N, C+1), and the indices of those kept.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    threshold = check_threshold(threshold)
    _check_logits(logits)
    scores, labels = logits.softmax(-1).max(-1)                      # (N,), (N,)
    no_object = logits.shape[-1] - 1
    kept = torch.nonzero((labels != no_object) & (scores > threshold)).flatten()  # (K,)
    return scores, labels, kept


def _check_logits(logits) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[-1] < 2:
        raise ValueError(f"logits must be one image's class logits (N, C+1) with C >= 1, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")


def merge_image(mask_logits: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                queries: torch.Tensor, size, padded_size, target_size,
                is_thing: IsThing = None, stuff_merge: str = "union",
                max_removed_area: int = MAX_REMOVED_AREA) -> PanopticResult:
    """The merge for one image's K kept queries: mask_logits (K, H/4, W/4) over the padded batch.

    ``max_removed_area``: the small-segment rule, as in ``merge_panoptic``.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    check_stuff_merge(stuff_merge)
    max_removed_area = check_max_removed_area(max_removed_area)
    thing = _is_thing_function(is_thing)
    h, w = check_size(size, "size")
    padded_size = check_size(padded_size, "padded_size")
    target_size = check_size(target_size, "target_size")
    if h > padded_size[0] or w > padded_size[1]:
        raise ValueError(f"size {(h, w)} is larger than the padded batch {padded_size}: the padded size is "
                         "the largest height and width of the batch")
    _check_kept(mask_logits, scores, labels, queries)
    if len(labels) == 0:  # nothing kept: every pixel is VOID
        return PanopticResult(torch.zeros(target_size, dtype=torch.long), [])

    masks = F.interpolate(mask_logits[:, None].float(), size=tuple(padded_size),
                          mode="bilinear", align_corners=False)[:, 0]  # (K, Hpad, Wpad)
    masks = masks[:, :h, :w]                                           # (K, h, w): padding cropped
    labels = labels.tolist()
    stuff_first = {}  # stuff class -> position of its first query
    group = [stuff_first.setdefault(c, k) if not thing(c) else k for k, c in enumerate(labels)]

    alive = list(range(len(labels)))
    first_round = True
    while True:
        # merge stuff always ("union"), or in the first round only ("official")
        merged = stuff_merge == "union" or first_round
        candidates = masks if len(alive) == len(labels) else masks[alive]  # (K', h, w)
        if stuff_merge == "official":
            # the official softmax over queries (pixels as rows) rounds near-ties to equal
            # values, which the argmax gives to the first query; reproduced pixel for pixel
            per_pixel = candidates.flatten(1).transpose(0, 1).softmax(-1)  # (h*w, K')
            winner = per_pixel.argmax(-1).view(h, w)                   # (h, w) position in `alive`
        else:
            winner = candidates.argmax(0)                              # (h, w) position in `alive`
        owners = [group[k] for k in alive] if merged else alive
        owner = torch.tensor(owners, device=winner.device)[winner].cpu()  # (h, w) a query position
        owner = _resize_nearest(owner, target_size)                    # (H_t, W_t)
        area = torch.bincount(owner.flatten(), minlength=len(labels))  # (K,)
        if stuff_merge == "union":
            small = [k for k in alive if area[group[k]] <= max_removed_area]
        else:  # merged-away stuff queries have area 0 here, so the official code removes them
            small = [k for k in alive if area[k] <= max_removed_area]
        first_round = False
        if not small:
            break
        alive = [k for k in alive if k not in small]
        if not alive:
            return PanopticResult(torch.zeros(target_size, dtype=torch.long), [])

    # number the segments 1, 2, ... in query order; 0 stays VOID
    segment_of = {}
    for k in alive:
        if area[k] > 0:
            segment_of[k] = len(segment_of) + 1
    id_lookup = torch.zeros(len(labels), dtype=torch.long)
    for k, segment_id in segment_of.items():
        id_lookup[k] = segment_id
    id_map = id_lookup[owner]                                          # (H_t, W_t)

    boxes = segment_boxes(id_map, len(segment_of))                     # (S+1, 4)
    segments = []
    for k, segment_id in segment_of.items():
        members = [j for j in alive if (group[j] if merged else j) == k]
        segments.append({
            "id": segment_id,
            "category_id": labels[k],
            "isthing": thing(labels[k]),
            "area": int(area[k]),
            "bbox": boxes[segment_id].tolist(),
            "iscrowd": 0,
            "score": scores[k].item(),
            "queries": [int(queries[j]) for j in members],
        })
    return PanopticResult(id_map, segments)


def _check_kept(mask_logits, scores, labels, queries) -> None:
    """The K kept queries' mask logits (K, h, w), scores, labels and query indices, which must
    agree in K, and finite mask logits (a NaN would win every argmax it takes part in)."""
    if not isinstance(mask_logits, torch.Tensor) or mask_logits.dim() != 3:
        got = tuple(mask_logits.shape) if isinstance(mask_logits, torch.Tensor) else type(mask_logits).__name__
        raise ValueError(f"mask_logits must be the kept queries' mask logits (K, h, w), got {got}")
    counts = {"mask_logits": len(mask_logits), "scores": len(scores), "labels": len(labels),
              "queries": len(queries)}
    if len(set(counts.values())) != 1:
        raise ValueError(f"one entry per kept query is needed in each of {counts}")
    if len(mask_logits) and 0 in mask_logits.shape[-2:]:
        raise ValueError(f"mask_logits of shape {tuple(mask_logits.shape)} have no pixels")
    if not bool(torch.isfinite(mask_logits).all()):
        raise ValueError(
            "the mask logits of the kept queries hold NaN or infinite values: the model's weights or the "
            "image are broken. Check the weights with hub.check_finite(model.state_dict()); a float16 model "
            "can overflow: run it as model.float()")


def segment_boxes(id_map: torch.Tensor, num_segments: int) -> torch.Tensor:
    """COCO boxes [x, y, width, height] of segments 0..num_segments in one pass over the map,
    (S+1, 4); the same as pycocotools' toBbox of each segment's mask (the tests check).

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    if not isinstance(id_map, torch.Tensor) or id_map.dim() != 2 or id_map.is_floating_point():
        raise ValueError("id_map must be an (H, W) tensor of integer segment ids")
    if id_map.numel() and (int(id_map.min()) < 0 or int(id_map.max()) > num_segments):
        raise ValueError(f"id_map has ids from {int(id_map.min())} to {int(id_map.max())}; with "
                         f"num_segments={num_segments} they must be from 0 to {num_segments}")
    height, width = id_map.shape
    ids = id_map.long().flatten()                                      # (H*W,)
    ys = torch.arange(height).repeat_interleave(width)                 # (H*W,) row of each pixel
    xs = torch.arange(width).repeat(height)                            # (H*W,) column of each pixel
    size = (num_segments + 1,)
    low_x = torch.full(size, width).scatter_reduce(0, ids, xs, "amin")
    low_y = torch.full(size, height).scatter_reduce(0, ids, ys, "amin")
    high_x = torch.full(size, -1).scatter_reduce(0, ids, xs, "amax")
    high_y = torch.full(size, -1).scatter_reduce(0, ids, ys, "amax")
    return torch.stack([low_x, low_y, high_x - low_x + 1, high_y - low_y + 1], dim=1)


def _resize_nearest(ids: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of an id map with PIL's rule, as the official code resizes its
    PNG (PIL samples the source pixel under each target pixel's centre)."""
    if tuple(ids.shape) == tuple(size):
        return ids
    image = Image.fromarray(ids.numpy().astype(np.int32), mode="I")
    resized = image.resize((size[1], size[0]), Image.NEAREST)
    return torch.from_numpy(np.asarray(resized, dtype=np.int64).copy())
