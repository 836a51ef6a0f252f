"""Why a model misses shapes: every thing segment that panoptic quality does not count as a match,
sorted by what went wrong.

    .venv/bin/python scripts/thing_errors.py --checkpoint RUN/model.pth --data DIR [--threshold T (default: the model's keep threshold)]

PQ's recognition quality (RQ) only says how many thing segments were unmatched (its false negatives
and false positives). This script runs the fast inference path as ``python -m detr_explained.evaluate``
does, matches predicted and ground-truth things as PQ does (same category, IoU > 0.5), and sorts each
one that is left:

missed shape (false negative)
  wrong class    a predicted thing of another category covers it (IoU > 0.5)
  poor mask      a predicted thing overlaps it, but with IoU 0.1 to 0.5
  below the threshold   no thing there, but a query's box lies on it (box IoU > 0.5) and gives
                 its category a probability of at least 0.5, under the keep threshold
  not found      nothing of the above
extra segment (false positive)
  wrong class    it covers a shape of another category (IoU > 0.5)
  duplicate      it overlaps (IoU > 0.1) a shape that another segment already matches
  poor mask      it overlaps (IoU > 0.1) a shape that no segment matches
  nothing there  it overlaps no shape

It also prints the area of matched and missed shapes. Used for benchmarks/stronger_model.md (issue 9).
"""
import argparse
import collections
import os
import sys
from typing import Optional

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou, masks_to_boxes

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detr_explained.coco_panoptic import open_dataset  # noqa: E402
from detr_explained.evaluate import _drop_unknown_categories, is_thing_of, load_trained_model  # noqa: E402
from detr_explained.inference import segment  # noqa: E402
from detr_explained.pq import mask_iou  # noqa: E402

MATCH_IOU = 0.5     # PQ's match
OVERLAP_IOU = 0.1   # "overlaps": more than a touch
SEEN_PROBABILITY = 0.5


def thing_errors(model, dataset, threshold: Optional[float] = None, batch_size: int = 8) -> dict:
    """Counts per (category name, kind): ``{"matched": Counter, "missed": Counter, "extra": Counter,
    "areas": {"matched": [...], "missed": [...]}}``."""
    categories = dataset.categories
    is_thing = is_thing_of(dataset)
    thing = lambda category_id: bool(categories.get(category_id, {}).get("isthing", 0))  # noqa: E731
    name = lambda category_id: categories[category_id]["name"]  # noqa: E731
    counts = {"matched": collections.Counter(), "missed": collections.Counter(),
              "extra": collections.Counter(), "areas": {"matched": [], "missed": []}}
    model.eval()
    for start in range(0, len(dataset), batch_size):
        indices = list(range(start, min(start + batch_size, len(dataset))))
        images = [dataset[i][0] for i in indices]
        with torch.no_grad():
            state = model.detr.encode_decode(model.detr.batch(images))
            results = segment(model, images, threshold=threshold, is_thing=is_thing)
        probabilities = state["logits"][-1].softmax(-1)[..., :-1]                 # (B, N, C)
        boxes = box_convert(state["boxes"][-1], "cxcywh", "xyxy")                # (B, N, 4)
        for k, index in enumerate(indices):
            gt_ids, gt_segments = dataset.read_panoptic(index)
            pred_ids, pred_segments = _drop_unknown_categories(results[k].id_map, results[k].segments_info,
                                                               categories)
            pred_ids = pred_ids.numpy()
            gts = [s for s in gt_segments if thing(s["category_id"])]
            preds = [s for s in pred_segments if thing(s["category_id"])]
            gt_masks = torch.from_numpy(np.stack([gt_ids == s["id"] for s in gts] or [gt_ids < 0]))
            pred_masks = torch.from_numpy(np.stack([pred_ids == s["id"] for s in preds] or [pred_ids < 0]))
            iou = mask_iou(gt_masks, pred_masks)[:len(gts), :len(preds)]          # (G, P)
            same = torch.tensor([[p["category_id"] == g["category_id"] for p in preds] for g in gts],
                                dtype=torch.bool).reshape(len(gts), len(preds))
            matches = (iou > MATCH_IOU) & same                                     # PQ's matches
            h, w = gt_ids.shape
            for i, g in enumerate(gts):
                label, area = name(g["category_id"]), int(gt_masks[i].sum())
                if matches[i].any():
                    counts["matched"][label] += 1
                    counts["areas"]["matched"].append(area)
                    continue
                counts["areas"]["missed"].append(area)
                best = float(iou[i].max()) if len(preds) else 0.0
                if best > MATCH_IOU:
                    kind = "wrong class"
                elif best > OVERLAP_IOU:
                    kind = "poor mask"
                else:
                    box = masks_to_boxes(gt_masks[i:i + 1]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
                    box = box / torch.tensor([w, h, w, h])                         # as the model predicts
                    on_it = box_iou(box, boxes[k])[0] > MATCH_IOU                  # (N,)
                    seen = probabilities[k, on_it, g["category_id"]] if g["category_id"] < probabilities.shape[-1] \
                        else torch.zeros(0)
                    kind = "below the threshold" if seen.numel() and seen.max() >= SEEN_PROBABILITY else "not found"
                counts["missed"][(label, kind)] += 1
            for j, p in enumerate(preds):
                if matches[:, j].any():
                    continue
                best_iou = float(iou[:, j].max()) if len(gts) else 0.0
                best_gt = int(iou[:, j].argmax()) if len(gts) else None
                if best_iou > MATCH_IOU:
                    kind = "wrong class"
                elif best_iou > OVERLAP_IOU:
                    kind = "duplicate" if matches[best_gt].any() else "poor mask"
                else:
                    kind = "nothing there"
                counts["extra"][(name(p["category_id"]), kind)] += 1
    return counts


def format_counts(counts: dict) -> str:
    names = sorted(set(counts["matched"]) | {n for n, _ in counts["missed"]} | {n for n, _ in counts["extra"]})
    lines = []
    for title, key, kinds in (("missed shapes (false negatives)", "missed",
                               ("wrong class", "poor mask", "below the threshold", "not found")),
                              ("extra segments (false positives)", "extra",
                               ("wrong class", "duplicate", "poor mask", "nothing there"))):
        lines.append(f"{title}:")
        lines.append(f"  {'category':<10} {'matched':>7} " + " ".join(f"{k:>19}" for k in kinds) + f" {'total':>6}")
        for n in names + ["all"]:
            row = [sum(v for (c, k), v in counts[key].items() if k == kind and n in (c, "all")) for kind in kinds]
            matched = sum(v for c, v in counts["matched"].items() if n in (c, "all"))
            lines.append(f"  {n:<10} {matched:>7} " + " ".join(f"{v:>19}" for v in row) + f" {sum(row):>6}")
    for key in ("matched", "missed"):
        areas = np.array(counts["areas"][key])
        if areas.size:
            p10, p50, p90 = np.percentile(areas, [10, 50, 90])
            lines.append(f"area of {key} shapes in pixels: 10th percentile {p10:.0f}, median {p50:.0f}, "
                         f"90th {p90:.0f} ({areas.size} shapes)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model.pth or checkpoint.pth of a training run")
    parser.add_argument("--data", required=True, help="a COCO panoptic folder (images/, panoptic/, panoptic.json)")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's keep threshold")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = open_dataset(args.data)
    model = load_trained_model(args.checkpoint, dataset=dataset)
    counts = thing_errors(model, dataset, threshold=args.threshold)
    print(format_counts(counts), end="")
    return counts


if __name__ == "__main__":
    main()
