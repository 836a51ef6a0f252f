"""Fast panoptic inference: the masks of only the queries that are kept.

Explained in ``book/appendix_side_topics.ipynb`` (the fast path; the merge itself in ``book/05_argmax_merge.ipynb``). ``segment`` gives the same panoptic result as
running the full model and then ``merge_panoptic``, with less work:

* The merge keeps only queries whose class score passes the threshold (typically about 20 of
  100), and the class score comes from the decoder alone. So the box-embedding attention maps
  and the mask head, most of the model's compute at 100 queries, run only for kept queries.
  Each query is an independent sample of the mask head (no layer mixes queries: convolutions and
  GroupNorm act per sample, and each query's attention maps have their own softmax), so the
  kept queries' masks are the same as in the full run.
* The mask head's first convolution is split so the projected Res5 is convolved once per image,
  not once per query (``MaskHead.forward_selected`` explains why that is exact).
* No autograd bookkeeping (``torch.inference_mode``).
Only the order of floating-point sums changes (by about 1e-6), so a pixel can change hands only
where two queries' mask logits tie to within rounding; the tests check that, and the benchmark
(benchmarks/panoptic_speed.py) that the segments equal the official code's.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .detr import DETRPanoptic
from .config import keep_threshold
from .merge import (IsThing, PanopticResult, _check_finite_logits, _check_sizes,
                    check_merge_options, merge_image, select_queries)


@torch.inference_mode()
def segment(model: DETRPanoptic, images: Sequence[torch.Tensor],
            target_sizes: Optional[Sequence[tuple[int, int]]] = None,
            threshold: Optional[float] = None, is_thing: IsThing = None,
            stuff_merge: str = "union") -> list[PanopticResult]:
    """Images (a list of normalised 3xHxW tensors) -> one PanopticResult per image.

    Arguments as in ``merge_panoptic``; ``target_sizes`` defaults to the input sizes, ``threshold``
    to the model's own (``model.config.keep_threshold``, the official 0.85 unless it says otherwise). The model
    must be in eval mode (``model.eval()``, as build_model returns it): in training mode dropout
    is on and trained batch norm uses each batch's statistics, so the segments would depend on
    chance and on the other images of the batch.

    Explained in ``book/appendix_side_topics.ipynb`` (the fast path, and why it gives the same answer).
    """
    threshold = _check_arguments(model, keep_threshold(model) if threshold is None else threshold,
                                 is_thing, stuff_merge)
    batch = model.detr.batch(images)
    if target_sizes is not None:
        target_sizes = _check_sizes(target_sizes, "target_sizes", len(batch.sizes))
    state = model.detr.encode_decode(batch)
    logits = state["logits"][-1]                                       # (B, N, C+1)
    _check_finite_logits(logits)
    box_embeddings = state["hs"][-1]                                   # (B, N, d)
    res5_mask = state["masks"]["res5"]                                 # (B, H/32, W/32)

    selections, maps = [], []
    for b in range(logits.shape[0]):
        scores, labels, kept = select_queries(logits[b], threshold)    # kept: (K_b,)
        selections.append((scores[kept], labels[kept], kept))
        maps.append(model.bbox_attention(box_embeddings[b:b + 1, kept], state["memory"][b:b + 1],
                                         res5_mask[b:b + 1])[0])      # (K_b, M, H/32, W/32)
    image_index = torch.cat([torch.full((len(kept),), b, dtype=torch.long)
                             for b, (_, _, kept) in enumerate(selections)])  # (K,)
    features = state["features"]
    mask_logits = model.mask_head.forward_selected(
        state["src_proj"], torch.cat(maps), [features["res4"], features["res3"], features["res2"]],
        image_index,
    )[:, 0]                                                            # (K, H/4, W/4)

    padded = tuple(batch.tensors.shape[-2:])
    target_sizes = batch.sizes if target_sizes is None else target_sizes
    results, start = [], 0
    for b, (scores, labels, kept) in enumerate(selections):
        masks = mask_logits[start:start + len(kept)]                   # (K_b, H/4, W/4)
        start += len(kept)
        results.append(merge_image(masks, scores, labels, kept, batch.sizes[b], padded,
                                   target_sizes[b], is_thing, stuff_merge))
    return results


def _check_arguments(model, threshold, is_thing, stuff_merge) -> float:
    """A DETRPanoptic in eval mode and valid merge options; returns the threshold as a float."""
    if not isinstance(model, DETRPanoptic):
        raise TypeError(f"segment needs a DETRPanoptic (from build_model(...)), got {type(model).__name__}")
    if model.training:
        raise ValueError("the model is in training mode (dropout on, batch norm using the batch's "
                         "statistics): call model.eval() first (evaluate() does it and restores the mode)")
    return check_merge_options(threshold, is_thing, stuff_merge)
