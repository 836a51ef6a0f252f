"""The training command's data: which images train, which are held out, in what order, mirrored.

Explained in ``book/07_train_it_yourself.ipynb``.
"""
from __future__ import annotations

import argparse
from typing import Optional

import torch
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from .coco_panoptic import CocoPanoptic, collate, open_dataset
from .distributed import Distributed

# The official recipe's first augmentation: each training image is mirrored left-right with this
# probability. A mirrored scene is a new, equally valid scene, so the model sees twice the variety
# and memorises the training set later.
HFLIP_PROBABILITY = 0.5


def split_datasets(args: argparse.Namespace) -> tuple[CocoPanoptic | Subset, Optional[CocoPanoptic | Subset]]:
    """The training set and the held-out set PQ is measured on (``book/07_train_it_yourself.ipynb``).

    With ``--val-data`` the held-out set is that dataset (its first ``--val-size`` images);
    otherwise the last ``--val-size`` images of ``--data`` (default 10%) are held out and
    never trained on.
    """
    full = open_dataset(args.data)
    if args.val_data is not None:
        val = open_dataset(args.val_data)
        if args.val_size is not None and args.val_size < len(val):
            val = Subset(val, range(args.val_size))
        return full, val
    held_out = args.val_size if args.val_size is not None else len(full) // 10
    if held_out >= len(full):
        raise ValueError(f"--val-size {held_out} leaves nothing to train on in {len(full)} images")
    train = Subset(full, range(len(full) - held_out))
    val = Subset(full, range(len(full) - held_out, len(full))) if held_out > 0 else None
    return train, val


def base_dataset(dataset) -> CocoPanoptic:
    """The CocoPanoptic under a Subset (or the dataset itself) (``book/07_train_it_yourself.ipynb``)."""
    return dataset.dataset if isinstance(dataset, Subset) else dataset


def epoch_loader(dataset, dist_info: Distributed, args: argparse.Namespace, epoch: int,
                 skip_batches: int = 0) -> DataLoader:
    """This process's batches of one epoch, in an order fixed by (seed, epoch)
    (``book/07_train_it_yourself.ipynb``).

    DistributedSampler shuffles with ``seed + epoch`` and gives each process every N-th image; one
    process is the case N = 1. ``skip_batches`` leaves out the batches a resumed run already did.
    """
    sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                 shuffle=True, seed=args.seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)[skip_batches * args.batch_size:]
    # Its own generator: a DataLoader otherwise draws its workers' seed from the global random
    # state, and a resumed run, which makes one loader more, would then draw other dropout masks.
    generator = torch.Generator().manual_seed(args.seed + epoch)
    return DataLoader(dataset, batch_size=args.batch_size, sampler=indices, collate_fn=collate,
                      num_workers=args.num_workers, generator=generator)


def random_hflip(images: list[torch.Tensor], targets: list[dict],
                 probability: float = HFLIP_PROBABILITY) -> tuple[list[torch.Tensor], list[dict]]:
    """Mirror each image and its target left-right with ``probability``
    (``book/07_train_it_yourself.ipynb``).

    The image (3, H, W) and masks (K, H, W) are flipped along W; a box (cx, cy, w, h) in [0, 1]
    becomes (1 - cx, cy, w, h). Labels, areas and sizes do not change. The draws come from
    torch's global random state, which checkpoints save, so a resumed run repeats them.
    """
    if probability <= 0:
        return images, targets
    flips = (torch.rand(len(images)) < probability).tolist()
    out_images, out_targets = [], []
    for image, target, flip in zip(images, targets, flips):
        if flip:
            target = dict(target)
            image = image.flip(-1)                                           # (3, H, W)
            target["masks"] = target["masks"].flip(-1)                       # (K, H, W)
            boxes = target["boxes"].clone()                                  # (K, 4) cxcywh
            boxes[:, 0] = 1 - boxes[:, 0]
            target["boxes"] = boxes
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets


def to_device(images: list[torch.Tensor], targets: list[dict], device: torch.device):
    """Images and the tensors of their targets on ``device`` (``book/07_train_it_yourself.ipynb``)."""
    images = [image.to(device) for image in images]
    targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
               for t in targets]
    return images, targets
