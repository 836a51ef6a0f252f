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

Fixes of the official post-processor (detr==0.1.4): no crash when no query is kept (the whole
image is VOID); batch padding is cropped before resizing (the official resize stretches padded
images); segment ids start at 1, since id 0 is VOID in the COCO panoptic format.

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
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .config import COCO_LAST_THING_ID

# A query is kept when its best real class has softmax probability above this.
KEEP_THRESHOLD = 0.85
# Segments with this many pixels or fewer are removed and their pixels re-assigned.
MAX_REMOVED_AREA = 4
# Segment id of unlabelled pixels in the COCO panoptic format.
VOID_ID = 0

IsThing = Union[Callable[[int], bool], dict, Sequence[bool], None]


def id2rgb(id_map) -> np.ndarray:
    """Segment ids (H, W) -> the COCO panoptic PNG colours (H, W, 3): id = R + 256 G + 256^2 B.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    ids = np.asarray(id_map, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2 % 256], axis=-1).astype(np.uint8)


def rgb2id(rgb) -> np.ndarray:
    """COCO panoptic PNG colours (H, W, 3) -> segment ids (H, W).

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    rgb = np.asarray(rgb).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 ** 2 * rgb[..., 2]


def coco_is_thing(category_id: int) -> bool:
    """The official hub models' rule: COCO ids up to 90 are things, higher ids are stuff.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    return category_id <= COCO_LAST_THING_ID


def _is_thing_function(is_thing: IsThing) -> Callable[[int], bool]:
    if is_thing is None:
        return coco_is_thing
    if callable(is_thing):
        return is_thing
    return lambda category_id: bool(is_thing[category_id])


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
        lookup = torch.full((int(self.id_map.max()) + 1,), -1, dtype=torch.long)
        for segment in self.segments_info:
            lookup[segment["id"]] = segment["category_id"]
        return lookup[self.id_map]


def merge_panoptic(outputs: dict, sizes: Sequence[tuple[int, int]],
                   target_sizes: Optional[Sequence[tuple[int, int]]] = None,
                   threshold: float = KEEP_THRESHOLD, is_thing: IsThing = None,
                   stuff_merge: str = "union") -> list[PanopticResult]:
    """Model outputs -> one PanopticResult per image (``book/05_argmax_merge.ipynb``).

    outputs:      the model's dict: pred_logits (B, N, C+1) and pred_masks (B, N, H/4, W/4).
    sizes:        each image's (h, w) as it entered the model, before batch padding
                  (``ImageBatch.sizes``).
    target_sizes: the (h, w) to return each map at (e.g. the original photo); default ``sizes``.
    is_thing:     category id -> bool (a function, dict or list); default: COCO ids <= 90.
    stuff_merge:  "union" (default) or "official"; see the module docstring.
    """
    logits, masks = outputs["pred_logits"].detach(), outputs["pred_masks"].detach()
    if len(sizes) != logits.shape[0]:
        raise ValueError(f"got {len(sizes)} sizes for a batch of {logits.shape[0]} images")
    target_sizes = sizes if target_sizes is None else target_sizes
    padded = _padded_size(sizes)
    results = []
    for b in range(logits.shape[0]):
        scores, labels, kept = select_queries(logits[b], threshold)
        results.append(merge_image(masks[b, kept], scores[kept], labels[kept], kept, sizes[b],
                                   padded, target_sizes[b], is_thing, stuff_merge))
    return results


def _padded_size(sizes) -> tuple[int, int]:
    return max(h for h, _ in sizes), max(w for _, w in sizes)


def select_queries(logits: torch.Tensor, threshold: float = KEEP_THRESHOLD):
    """Scores and labels of N queries (N, C+1), and the indices of those kept.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    scores, labels = logits.softmax(-1).max(-1)                      # (N,), (N,)
    no_object = logits.shape[-1] - 1
    kept = torch.nonzero((labels != no_object) & (scores > threshold)).flatten()  # (K,)
    return scores, labels, kept


def merge_image(mask_logits: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                queries: torch.Tensor, size, padded_size, target_size,
                is_thing: IsThing = None, stuff_merge: str = "union") -> PanopticResult:
    """The merge for one image's K kept queries: mask_logits (K, H/4, W/4) over the padded batch.

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    if stuff_merge not in ("union", "official"):
        raise ValueError(f"stuff_merge must be 'union' or 'official', got {stuff_merge!r}")
    thing = _is_thing_function(is_thing)
    h, w = size
    target_size = tuple(target_size)
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
            small = [k for k in alive if area[group[k]] <= MAX_REMOVED_AREA]
        else:  # merged-away stuff queries have area 0 here, so the official code removes them
            small = [k for k in alive if area[k] <= MAX_REMOVED_AREA]
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


def segment_boxes(id_map: torch.Tensor, num_segments: int) -> torch.Tensor:
    """COCO boxes [x, y, width, height] of segments 0..num_segments in one pass over the map,
    (S+1, 4); the same as pycocotools' toBbox of each segment's mask (the tests check).

    Explained in ``book/05_argmax_merge.ipynb``.
    """
    height, width = id_map.shape
    ids = id_map.flatten()                                             # (H*W,)
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
