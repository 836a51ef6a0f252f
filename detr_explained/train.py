"""Training DETR panoptic: the loop, the optimiser, checkpoints, evaluation, several processes.

Explained in ``book/07_train_it_yourself.ipynb``. One training step is the whole method:

    images, targets = random_hflip(...)     half the scenes mirrored left-right (--hflip)
    outputs = model(images, select=criterion.match_for(targets))
                                            pred_logits (B, N, C+1), pred_boxes (B, N, 4),
                                            aux_outputs, the Hungarian matching, and the masks of
                                            the K matched queries only (K, H/4, W/4)
    losses = criterion(outputs, targets)    CE, L1, GIoU, focal, DICE on that matching
    losses["loss"].backward()
    clip_grad_norm_(parameters, 0.1)        the official clipping: no single batch jumps far
    optimizer.step()                        AdamW, the backbone with its own learning rate

Everything else here is bookkeeping: which data, how long, where to save, how to go on after a
stop, and how to run the same loop in several processes.

Command line::

    python -m detr_explained.train --data DATA --out RUN_DIR [--val-data VAL]
        [--config detr-tiny-synthetic] [--epochs E | --steps S] [--batch-size 8] [--lr 1e-4]
        [--lr-backbone LR] [--weight-decay 1e-4] [--clip 0.1] [--lr-drop STEP]
        [--eval-every K] [--seed 0] [--resume] [--overwrite] [--num-workers 0]
        [--progress bar|lines] [--hflip 0.5]

    torchrun --nproc_per_node=2 -m detr_explained.train ...      (the same, in 2 processes)

What it writes in RUN_DIR (only process 0 writes):

- ``checkpoint.pth``: everything needed to go on: ``model`` (float32 state dict), ``optimizer``,
  ``step``, ``epoch``, ``config`` (the DETRConfig as a dict), ``args`` (the command's options as
  a dict), ``rng`` (each process's random state) and ``train_seconds``. ``--resume`` continues
  from it exactly: the same step count, optimiser state, data order and random numbers (the
  options that shape the updates, RESUMED_OPTIONS, come from the checkpoint too).
- ``model.pth``: ``{"model": state_dict}`` only, in float16 by default (``--model-dtype``): the
  file to ship, half the size; ``evaluate.load_trained_model`` and
  ``build_model("detr-tiny-synthetic", checkpoint=...)`` read it.
- ``log.jsonl``: one JSON line per logged step (losses, learning rate, seconds) and per
  evaluation (PQ, SQ, RQ), for plotting.

Training from scratch: the official recipe fine-tunes an ImageNet-pretrained ResNet whose batch
norm is frozen, with a backbone learning rate of 1e-5. Offline there are no ImageNet weights, so
the default preset ``detr-tiny-synthetic`` uses ordinary batch norm, and the backbone learns at
the same rate as the rest (``--lr-backbone`` defaults to ``--lr`` when the batch norm is not
frozen, to the official 1e-5 when it is): at 1e-5 a random ResNet would hardly move.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import time
from typing import Optional, Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from . import cli
from .coco_panoptic import CocoPanoptic, collate, open_dataset
from .config import CONFIGS, DETRConfig, get_config
from .detr import DETRPanoptic
from .evaluate import DEFAULT_CONFIG, category_list, check_categories, evaluate
from .hub import build_model, check_config_overrides, load_checkpoint
from .losses import SetCriterion
from .matcher import NonFiniteCostError
from .merge import KEEP_THRESHOLD
from .pq import PQResult, format_pq_table
from .runs import CHECKPOINT_FILE, LOG_FILE, MODEL_FILE, RUN_FILES, RunFolder, resume_command  # noqa: F401
from .threads import ThreadGovernor, parse_threads

# The official optimiser settings (DETR's main.py): AdamW, 1e-4 for the transformer and heads,
# 1e-5 for a pretrained backbone, weight decay 1e-4, gradients clipped to norm 0.1.
LR = 1e-4
LR_PRETRAINED_BACKBONE = 1e-5
WEIGHT_DECAY = 1e-4
CLIP_MAX_NORM = 0.1
# At --lr-drop every learning rate is multiplied by this (the official StepLR: x0.1 at epoch 200).
LR_DROP_FACTOR = 0.1

# The files of a run directory are CHECKPOINT_FILE, MODEL_FILE and LOG_FILE (detr_explained.runs):
# --overwrite replaces these and nothing else, and only once the new run has saved its first
# checkpoint.

# Exit status of a run stopped by Ctrl-C (SIGINT) or SIGTERM after saving: 128 + the signal.
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


# ----------------------------------------------------------------------------------------------
# Several processes
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Distributed:
    """Where this process stands among the training processes (``book/07_train_it_yourself.ipynb``).

    Under ``torchrun --nproc_per_node=N`` there are N processes, each with a ``rank`` 0..N-1 and
    its own slice of every epoch's images; after each backward pass DistributedDataParallel
    averages the gradients, so all N models take the same step. Run plainly, there is one
    process of rank 0 and no process group.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Process 0 alone prints, evaluates and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup_distributed() -> Distributed:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...)
    (``book/07_train_it_yourself.ipynb``).

    gloo on the CPU, nccl with one GPU per process (LOCAL_RANK picks it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world_size == 1:
        return Distributed(0, 1, device)
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), device)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m detr_explained.train`` (``book/07_train_it_yourself.ipynb``).

    Every number is checked as it is parsed (``detr_explained.cli``'s types): a step count of 0,
    a negative learning rate or a threshold of 1.5 ends the command with one line that says
    what to give instead, before anything is read or written.
    """
    parser = cli.CommandParser(
        prog="python -m detr_explained.train",
        description="Train DETR panoptic on a COCO panoptic dataset (book/07_train_it_yourself.ipynb). "
                    "Runs unchanged under torchrun --nproc_per_node=N.")
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="training set: a folder with images/, panoptic/, panoptic.json")
    data.add_argument("--val-data", default=None,
                      help="held-out set for PQ (default: the last --val-size images of --data, not trained on)")
    data.add_argument("--val-size", type=cli.non_negative_int, default=None,
                      help="evaluate on this many held-out images (default: all of --val-data, "
                           "or 10%% of --data; 0: no evaluation)")
    data.add_argument("--batch-size", type=cli.positive_int, default=8, help="images per step and process")
    data.add_argument("--num-workers", type=cli.non_negative_int, default=0, help="DataLoader worker processes")
    data.add_argument("--hflip", type=cli.probability, default=HFLIP_PROBABILITY,
                      help="probability of mirroring a training image left-right (default %(default)s; 0: never)")

    model = parser.add_argument_group("model")
    model.add_argument("--config", default=None, choices=sorted(CONFIGS), metavar="CONFIG",
                       help=f"model preset (default {DEFAULT_CONFIG}; one of {', '.join(sorted(CONFIGS))}); "
                            "num_classes always comes from the data")
    model.add_argument("--set", dest="config_set", action="append", default=[], type=parse_config_assignment,
                       metavar="FIELD=VALUE",
                       help="change one field of the preset, e.g. --set dilation=true --set num_queries=30 "
                            "(repeatable; fields: see detr_explained.DETRConfig)")

    length = parser.add_argument_group("how long").add_mutually_exclusive_group()
    length.add_argument("--epochs", type=cli.positive_int, default=None, help="passes over the training set (default 10)")
    length.add_argument("--steps", type=cli.positive_int, default=None, help="optimiser steps in total")
    parser.add_argument("--max-minutes", type=cli.positive_float, default=None,
                        help="also stop (and save) after this much training time")

    optim = parser.add_argument_group("optimiser")
    optim.add_argument("--lr", type=cli.positive_float, default=LR, help="AdamW learning rate (default %(default)s)")
    optim.add_argument("--lr-backbone", type=cli.non_negative_float, default=None,
                       help="the backbone's learning rate (default: --lr when training the backbone from "
                            f"scratch with ordinary batch norm; {LR_PRETRAINED_BACKBONE} with frozen batch norm; "
                            "0: the backbone does not learn)")
    optim.add_argument("--weight-decay", type=cli.non_negative_float, default=WEIGHT_DECAY)
    optim.add_argument("--clip", type=cli.non_negative_float, default=CLIP_MAX_NORM,
                       help="max gradient norm (0: no clipping)")
    optim.add_argument("--lr-drop", type=cli.positive_int, default=None,
                       help=f"multiply every learning rate by {LR_DROP_FACTOR} from this step on")
    optim.add_argument("--ema", type=cli.probability, default=None, metavar="DECAY",
                       help="also keep an exponential moving average of the weights (e.g. 0.999), "
                            "evaluated and shipped in model.pth instead of the last step's weights")

    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="run directory for checkpoint.pth, model.pth, log.jsonl")
    run.add_argument("--eval-every", type=cli.non_negative_int, default=0,
                     help="evaluate PQ (and save) every K steps; 0: only at the end")
    run.add_argument("--save-every", type=cli.positive_int, default=None,
                     help="save checkpoint.pth every K steps (default: at each evaluation and at the end)")
    run.add_argument("--log-every", type=cli.positive_int, default=10, help="write losses to log.jsonl every K steps")
    run.add_argument("--eval-threshold", type=cli.score_threshold, default=KEEP_THRESHOLD,
                     help="class score above which a query is kept in evaluation, from 0 up to 1 "
                          "(default %(default)s)")
    run.add_argument("--model-dtype", choices=("float16", "float32"), default="float16",
                     help="dtype of the weights in model.pth (checkpoint.pth is always float32)")
    run.add_argument("--progress", choices=("bar", "lines"), default="bar",
                     help="a tqdm progress bar, or a plain line every 10 s (for notebooks and logs)")
    run.add_argument("--threads", type=parse_threads, default=None, metavar="auto|N",
                     help="CPU threads: 'auto' (default) uses the cores other programs leave free and "
                          "checks again every 30 s; a number fixes it (needed for a bit-exact --resume)")
    run.add_argument("--seed", type=cli.non_negative_int, default=0)
    run.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pth")
    run.add_argument("--overwrite", action="store_true",
                     help="start afresh; RUN_DIR's checkpoint.pth, model.pth and log.jsonl are replaced "
                          "once the new run has saved its first checkpoint")
    cli.add_traceback_option(run)
    return parser


def parse_config_assignment(text: str) -> tuple[str, object]:
    """``"num_queries=30"`` -> ``("num_queries", 30)``: one DETRConfig field for ``--set``, its value
    read as the field's type (true/false for switches, none for an optional size)
    (``book/07_train_it_yourself.ipynb``)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    fields = {f.name: str(f.type) for f in dataclasses.fields(DETRConfig)}
    if not sep or not raw:
        raise argparse.ArgumentTypeError(f"{text!r}: give FIELD=VALUE, e.g. dilation=true")
    if key not in fields or key == "num_classes":
        raise argparse.ArgumentTypeError(
            f"{key!r} is not a field you can set; choose from "
            f"{', '.join(sorted(k for k in fields if k != 'num_classes'))} (num_classes comes from the data)")
    kind = fields[key]
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ValueError
            value: object = lowered == "true"
        elif kind in ("int", "Optional[int]"):
            value = None if kind == "Optional[int]" and raw.lower() == "none" else int(raw)
        elif kind == "float":
            value = float(raw)
        else:
            value = raw
        check_config_overrides(**{key: value})
    except (TypeError, ValueError) as error:
        detail = str(error) or f"{key} takes {'true or false' if kind == 'bool' else 'a ' + kind}"
        raise argparse.ArgumentTypeError(f"{text!r}: {detail}") from None
    return key, value


def check_run_dir(out: str, resume: bool, overwrite: bool) -> Optional[str]:
    """Why the run directory cannot be used as asked, or None (``book/07_train_it_yourself.ipynb``).

    A run directory holding a previous run is never replaced silently: that takes ``--overwrite``
    (start again) or ``--resume`` (go on from its checkpoint). See ``detr_explained.runs``.
    """
    return RunFolder(out, resume, overwrite).problem()


def check_options(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: options that must fit together, and the data folders
    (``book/07_train_it_yourself.ipynb``). Raises ``cli.UsageError``; reads and writes nothing
    but the folders' listings."""
    problem = check_run_dir(args.out, args.resume, args.overwrite)
    if problem:
        raise cli.UsageError(problem)
    for name in ("data", "val_data"):
        folder = getattr(args, name)
        if folder is not None and not os.path.isfile(os.path.join(folder, "panoptic.json")):
            raise cli.UsageError(f"--{name.replace('_', '-')} {folder}: no panoptic.json there "
                                 "(write a dataset with python -m detr_explained.synthetic, or give a "
                                 "folder with images/, panoptic/ and panoptic.json)")
    if args.val_data is not None and os.path.realpath(args.val_data) == os.path.realpath(args.data):
        raise cli.UsageError("--val-data is the training set itself: PQ on images the model trains on "
                             "says little; leave --val-data out to hold out the last images of --data")


# ----------------------------------------------------------------------------------------------
# Model, optimiser, learning rate
# ----------------------------------------------------------------------------------------------

def is_backbone_parameter(name: str) -> bool:
    """The ResNet's parameters, ``detr.backbone.0.body.*`` (with or without DDP's ``module.``)
    (``book/07_train_it_yourself.ipynb``)."""
    return ".backbone." in f".{name}"


def build_optimizer(model: torch.nn.Module, lr: float, lr_backbone: float,
                    weight_decay: float) -> torch.optim.AdamW:
    """AdamW with two parameter groups: everything else at ``lr``, the backbone at ``lr_backbone``
    (``book/07_train_it_yourself.ipynb``). Group 0 is the rest, group 1 the backbone."""
    rest, backbone = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (backbone if is_backbone_parameter(name) else rest).append(parameter)
    return torch.optim.AdamW([{"params": rest, "lr": lr, "base_lr": lr},
                              {"params": backbone, "lr": lr_backbone, "base_lr": lr_backbone}],
                             lr=lr, weight_decay=weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, step: int, lr_drop: Optional[int]) -> float:
    """The step schedule: every group's base rate, times 0.1 from step ``lr_drop`` on
    (``book/07_train_it_yourself.ipynb``). Returns the first group's rate."""
    factor = LR_DROP_FACTOR if lr_drop is not None and step >= lr_drop else 1.0
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def default_lr_backbone(args: argparse.Namespace, frozen_batchnorm: bool) -> float:
    """--lr when the backbone learns from scratch, the official 1e-5 for a frozen (pretrained) one
    (``book/07_train_it_yourself.ipynb``)."""
    if args.lr_backbone is not None:
        return args.lr_backbone
    return LR_PRETRAINED_BACKBONE if frozen_batchnorm else args.lr


def train_step(model: torch.nn.Module, criterion: SetCriterion, optimizer: torch.optim.Optimizer,
               images: list[torch.Tensor], targets: list[dict], clip: float) -> dict[str, float]:
    """One optimiser step on one batch (``book/07_train_it_yourself.ipynb``); returns the losses."""
    # Matching happens inside the forward, so that only the matched queries' masks are computed:
    # the other masks get no loss, and skipping them saves about 1/6 of the step
    # (benchmarks/train_step_speed.py).
    outputs = model(images, select=criterion.match_for(targets))  # pred_logits (B, N, C+1), ...
    losses = criterion(outputs, targets)        # {"loss_ce", ..., "loss_giou_0", ..., "loss"}
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return {name: value.item() for name, value in losses.items()}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

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


def _base_dataset(dataset) -> CocoPanoptic:
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


# The official recipe's first augmentation: each training image is mirrored left-right with this
# probability. A mirrored scene is a new, equally valid scene, so the model sees twice the variety
# and memorises the training set later.
HFLIP_PROBABILITY = 0.5


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


def _to_device(images, targets, device: torch.device):
    images = [image.to(device) for image in images]
    targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
               for t in targets]
    return images, targets


# ----------------------------------------------------------------------------------------------
# Saving and resuming
# ----------------------------------------------------------------------------------------------

def save_checkpoint(folder: RunFolder, model: DETRPanoptic, optimizer: torch.optim.Optimizer, step: int,
                    epoch: int, args: argparse.Namespace, rng: list[torch.Tensor],
                    train_seconds: float, categories: Optional[list[dict]] = None,
                    ema: Optional[AveragedModel] = None) -> None:
    """Write ``checkpoint.pth`` (to resume) and ``model.pth`` (to ship) (``book/07_train_it_yourself.ipynb``).

    Only plain types, tensors and dicts, so ``torch.load(..., weights_only=True)`` (what
    ``hub.read_checkpoint`` does) reads both. Both carry the dataset's ``categories`` (id, name,
    isthing), so evaluating or resuming on a dataset with other classes is refused, and the config,
    so that ``evaluate.load_trained_model`` rebuilds the same model from either. With ``--ema``
    the checkpoint also holds the averaged weights (``"ema"``), and ``model.pth`` ships those. Each file is
    written under a temporary name and renamed (``RunFolder.save``), so a run stopped mid-write
    or a full disk leaves the previous files intact.
    """
    state_dict = model.state_dict()
    checkpoint = {
        "model": state_dict,
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch": epoch,
        "config": dataclasses.asdict(model.config),
        "args": {k: v for k, v in vars(args).items() if k != "traceback"},
        "rng": rng,
        "train_seconds": train_seconds,
        "categories": categories,
    }
    if ema is not None:
        checkpoint["ema"] = {"model": ema.module.state_dict(), "n_averaged": ema.n_averaged}
        state_dict = ema.module.state_dict()
    dtype = getattr(torch, args.model_dtype)
    shipped = {"model": {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()},
               "config": checkpoint["config"], "categories": categories}
    folder.save({CHECKPOINT_FILE: checkpoint, MODEL_FILE: shipped})


def dataset_categories(dataset: CocoPanoptic) -> list[dict]:
    """The categories a run trains on, as saved in its files: id, name and isthing, by id
    (``book/07_train_it_yourself.ipynb``)."""
    return category_list(dataset.categories.values())


# The options a resumed run takes from its checkpoint, whatever the new command line says: they
# decide the data order and the updates, so changing them would not continue the same run.
# The others (--steps, --epochs, --max-minutes, --eval-every, --data paths, ...) may change.
RESUMED_OPTIONS = ("batch_size", "lr", "lr_backbone", "weight_decay", "clip", "lr_drop", "seed", "hflip",
                   "val_size", "model_dtype", "ema")


def _restore_training_options(args: argparse.Namespace, saved: dict, dist_info: "Distributed") -> None:
    """--resume: put the checkpoint's RESUMED_OPTIONS back into ``args``, saying which changed."""
    changed = [f"--{name.replace('_', '-')} {saved[name]} (not {getattr(args, name)})"
               for name in RESUMED_OPTIONS if name in saved and saved[name] != getattr(args, name)]
    for name in RESUMED_OPTIONS:
        if name in saved:
            setattr(args, name, saved[name])
    if changed and dist_info.is_main:
        print("note: resuming with the checkpoint's " + ", ".join(changed), file=sys.stderr)


def load_training_checkpoint(out: str) -> dict:
    """checkpoint.pth, read as ``hub.read_checkpoint`` reads it, weights only
    (``book/07_train_it_yourself.ipynb``)."""
    path = os.path.join(out, CHECKPOINT_FILE)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {CHECKPOINT_FILE} in {out}: nothing to resume") from None
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ValueError(f"{path} is not a readable training checkpoint ({type(err).__name__}: "
                         f"{str(err)[:200]}); start again with --overwrite") from err
    missing = [key for key in ("model", "optimizer", "step", "config", "args", "rng", "train_seconds")
               if not isinstance(loaded, dict) or key not in loaded]
    if missing:
        raise ValueError(f"{path} is not a checkpoint written by this training command (it lacks "
                         f"{', '.join(missing)}); a model.pth cannot be resumed: start again with --overwrite")
    return loaded


def _gather_rng_states(dist_info: Distributed) -> list[torch.Tensor]:
    """Every process's torch random state (dropout draws differ per process), rank order."""
    state = torch.get_rng_state()
    if not dist_info.enabled:
        return [state]
    states: list = [None] * dist_info.world_size
    dist.all_gather_object(states, state)
    return states


class Progress:
    """A progress bar: tqdm when installed and ``bar`` is true (``--progress bar``), else a line
    printed every few seconds (``--progress lines``); silent on processes other than 0
    (``book/07_train_it_yourself.ipynb``)."""

    PRINT_SECONDS = 10.0

    def __init__(self, total: int, initial: int, enabled: bool, bar: bool = True):
        self.total, self.step, self.enabled = total, initial, enabled
        self.start, self.last_print = time.time(), 0.0
        self.bar = None
        if enabled and bar:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, losses: dict[str, float]) -> None:
        self.step += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{losses['loss']:.3f}", refresh=False)
        elif time.time() - self.last_print > self.PRINT_SECONDS or self.step == self.total:
            self.last_print = time.time()
            print(f"step {self.step}/{self.total}  loss {losses['loss']:.3f}  "
                  f"({time.time() - self.start:.0f} s)", flush=True)

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------------------------
# Stopping: Ctrl-C, SIGTERM, the clock
# ----------------------------------------------------------------------------------------------

class TrainingStopped(ValueError):
    """A run that cannot go on (a loss that is not finite); the message says what is saved and
    what to do (``book/07_train_it_yourself.ipynb``)."""


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM during training: finish the step, save a checkpoint, print the
    command that resumes (``book/07_train_it_yourself.ipynb``).

    Used as ``with StopRequest() as stop:``; ``stop.signal`` is the signal received, or None. A
    second Ctrl-C stops at once (KeyboardInterrupt), leaving the last saved checkpoint. Handlers
    can only be installed in the main thread; elsewhere signals keep their usual effect.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: Optional[int] = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread
            self._restore()
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to stop at once, keeping the last saved one)", file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()


def _diverged(step: int, what: str, last_saved: Optional[int], args: argparse.Namespace) -> TrainingStopped:
    kept = (f"the checkpoint of step {last_saved} is kept in {args.out}" if last_saved is not None
            else "nothing of this run was saved")
    return TrainingStopped(f"step {step + 1}: {what}. Training diverged and stopped; {kept}. Start again "
                           f"with a lower --lr (now {args.lr}) or a --clip above 0 (now {args.clip}), "
                           "and --overwrite")


def _should_stop(args: argparse.Namespace, train_seconds: float, stop: StopRequest,
                 dist_info: Distributed) -> tuple[bool, bool]:
    """(time is up, a stop signal came): --max-minutes by process 0's clock, a signal to any
    process; every process gets the same answer, so all stop at the same step."""
    time_up = args.max_minutes is not None and dist_info.is_main and train_seconds >= 60 * args.max_minutes
    flags = torch.tensor([float(time_up), float(stop.signal is not None)], device=dist_info.device)
    if dist_info.enabled:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags[0].item()), bool(flags[1].item())


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------

def _thread_governor(args: argparse.Namespace, dist_info: Distributed) -> ThreadGovernor:
    """--threads: fixed, or the free cores shared among this machine's processes (at most
    OMP_NUM_THREADS when that is set, as torchrun sets it)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", dist_info.world_size))
    limit = None
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        limit = int(os.environ["OMP_NUM_THREADS"])
    elif local_processes > 1:
        limit = max(1, torch.get_num_threads() // local_processes)
    return ThreadGovernor(fixed=args.threads, limit=limit)


def train(args: argparse.Namespace, dist_info: Distributed, argv: Sequence[str] = ()) -> dict:
    """The whole run (``book/07_train_it_yourself.ipynb``); returns the final evaluation's record
    (step, train_seconds, pq_all, sq_all, rq_all, pq_things, ...; {} without a held-out set),
    with ``"stopped_by"`` set to the signal's name when Ctrl-C or SIGTERM ended it early.

    Everything that can be wrong with the options, the data and a resumed checkpoint is checked
    before the run folder is touched; a failure before the first save leaves the folder as it was.
    """
    check_options(args)
    train_set, val_set = split_datasets(args)
    base = _base_dataset(train_set)
    num_classes = base.num_classes
    categories = dataset_categories(base)

    resumed = load_training_checkpoint(args.out) if args.resume else None
    if resumed is not None:
        check_categories(resumed.get("categories"), resumed["config"].get("num_classes"), base,
                         os.path.join(args.out, CHECKPOINT_FILE))
        _restore_training_options(args, resumed["args"], dist_info)
        # The model is the one saved, whatever --config says now.
        fields = resumed["config"]
        asked = dict(args.config_set, num_classes=num_classes)
        if ((args.config is not None or args.config_set)
                and dataclasses.asdict(get_config(args.config or DEFAULT_CONFIG, **asked)) != fields):
            raise cli.UsageError(f"--config/--set differ from the config saved in "
                                 f"{os.path.join(args.out, CHECKPOINT_FILE)}; leave them out to resume")
        config_name, overrides = DEFAULT_CONFIG, fields
    else:
        config_name, overrides = args.config or DEFAULT_CONFIG, dict(args.config_set, num_classes=num_classes)
    if args.val_data is not None and val_set is not None:
        check_categories(categories, num_classes, _base_dataset(val_set), f"--data {args.data}",
                         what="the training set")

    folder = RunFolder(args.out, args.resume, args.overwrite)
    governor = _thread_governor(args, dist_info)
    threads_before = torch.get_num_threads()
    try:
        with StopRequest() as stop:
            if dist_info.is_main:
                folder.open()
            dist_info.barrier()
            return _run(args, dist_info, argv, train_set, val_set, categories, resumed, config_name,
                        overrides, folder, governor, stop)
    except BaseException:
        if dist_info.is_main:
            folder.abandon()
        raise
    finally:
        torch.set_num_threads(threads_before)


def _run(args, dist_info, argv, train_set, val_set, categories, resumed, config_name, overrides,
         folder: RunFolder, governor: ThreadGovernor, stop: StopRequest) -> dict:
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = build_model(config_name, **overrides).to(dist_info.device).train()
    model.detr.aux_loss = True  # a loss on every decoder layer's predictions, as in DETR
    config = model.config
    if config.frozen_batchnorm and dist_info.is_main:
        print("warning: this config freezes batch norm with identity statistics; without "
              "pretrained weights the ResNet is unnormalised. For training from scratch use "
              "--config detr-tiny-synthetic or a config with frozen_batchnorm=False.", file=sys.stderr)
    lr_backbone = default_lr_backbone(args, config.frozen_batchnorm)
    optimizer = build_optimizer(model, args.lr, lr_backbone, args.weight_decay)
    criterion = SetCriterion(config.num_classes).to(dist_info.device)

    step, train_seconds = 0, 0.0
    torch.manual_seed(args.seed + dist_info.rank)  # dropout draws differ between processes
    if resumed is not None:
        load_checkpoint(model, resumed["model"], source=os.path.join(args.out, CHECKPOINT_FILE))  # NaN refused
        optimizer.load_state_dict(resumed["optimizer"])
        step, train_seconds = resumed["step"], resumed["train_seconds"]
        if len(resumed["rng"]) == dist_info.world_size:
            torch.set_rng_state(resumed["rng"][dist_info.rank])
        elif dist_info.is_main:
            print(f"note: the checkpoint was written by {len(resumed['rng'])} process(es), this run has "
                  f"{dist_info.world_size}: data order and dropout will not repeat exactly", file=sys.stderr)

    # --ema: torch's AveragedModel keeps decay * average + (1 - decay) * weights after every step,
    # batch-norm statistics included (use_buffers); it is what evaluation sees and model.pth ships.
    ema = None
    if args.ema is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
        if resumed is not None and "ema" in resumed:
            load_checkpoint(ema.module, resumed["ema"]["model"], source=os.path.join(args.out, CHECKPOINT_FILE))
            ema.n_averaged.fill_(int(resumed["ema"]["n_averaged"]))
    evaluated = ema.module if ema is not None else model

    ddp_model = DistributedDataParallel(model) if dist_info.enabled else model

    batches_per_epoch = math.ceil(math.ceil(len(train_set) / dist_info.world_size) / args.batch_size)
    if args.steps is not None:
        total_steps = args.steps
    else:
        total_steps = (args.epochs if args.epochs is not None else 10) * batches_per_epoch
    save_every = args.save_every or args.eval_every or 0
    last_saved = step if resumed is not None else None

    def log(record: dict) -> None:
        if dist_info.is_main:
            folder.log(record)

    def save() -> None:
        nonlocal last_saved
        rng = _gather_rng_states(dist_info)  # every process takes part
        if dist_info.is_main:
            try:
                save_checkpoint(folder, model, optimizer, step, step // batches_per_epoch, args, rng,
                                train_seconds, categories, ema)
            except OSError as err:
                kept = (f"the checkpoint of step {last_saved} in {args.out} is intact"
                        if last_saved is not None else "nothing of this run was saved")
                raise type(err)(err.errno, f"{err.strerror or err} while saving step {step}; {kept}, "
                                           "and no partial file was left. Free some space, then "
                                           + (f"resume: {resume_command(argv, dist_info.world_size)}"
                                              if last_saved is not None else "run the command again")) from err
        last_saved = step

    def run_evaluation(final: bool = False) -> tuple[dict, Optional[PQResult]]:
        """PQ on the held-out set, by process 0 while the others wait. With --ema the averaged
        weights are scored; the last evaluation also scores the last step's own weights
        (``raw_pq_all``, ...), so that the log shows what the average changed."""
        if val_set is None:
            return {}, None
        record, result = {}, None
        if dist_info.is_main:
            eval_start = time.time()
            result = evaluate(evaluated, val_set, threshold=args.eval_threshold)
            summary = result.summary
            record = {"step": step, "train_seconds": round(train_seconds, 1),
                      **_pq_fields(summary)}
            if ema is not None and final:
                record.update({f"raw_{k}": v for k, v in
                               _pq_fields(evaluate(model, val_set, threshold=args.eval_threshold).summary).items()})
            record["eval_seconds"] = round(time.time() - eval_start, 1)
            log(record)
            progress.write(f"step {step}: PQ {100 * summary['All']['pq']:.1f} "
                           f"(things {100 * summary['Things']['pq']:.1f}, stuff {100 * summary['Stuff']['pq']:.1f}) "
                           f"after {train_seconds / 60:.1f} min of training"
                           + (f"; last step's own weights: PQ {100 * record['raw_pq_all']:.1f} "
                              f"(things {100 * record['raw_pq_things']:.1f})" if "raw_pq_all" in record else ""))
        dist_info.barrier()
        return record, result

    threads = governor.start()
    if dist_info.is_main and args.lr_drop is not None and args.lr_drop >= total_steps:
        print(f"note: --lr-drop {args.lr_drop} is not before the last step ({total_steps}): "
              "the learning rate never drops", file=sys.stderr)
    if dist_info.is_main:
        print(f"training {config_name if resumed is None else 'the resumed model'} "
              f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters) on "
              f"{len(train_set)} images, {dist_info.world_size} process(es) x batch {args.batch_size}, "
              f"{batches_per_epoch} steps per epoch, steps {step} -> {total_steps}; "
              f"lr {args.lr}, backbone lr {lr_backbone}; "
              f"{threads} thread(s){'' if args.threads else ' (auto)'}", flush=True)
    progress = Progress(total_steps, step, dist_info.is_main, bar=args.progress == "bar")
    finished, signalled = step >= total_steps, False
    try:
        while not finished:
            epoch = step // batches_per_epoch
            loader = epoch_loader(train_set, dist_info, args, epoch, skip_batches=step % batches_per_epoch)
            start = time.time()  # the training clock counts loading the batch too
            for images, targets in loader:
                lr = set_learning_rate(optimizer, step, args.lr_drop)
                images, targets = random_hflip(images, targets, args.hflip)
                images, targets = _to_device(images, targets, dist_info.device)
                try:
                    losses = train_step(ddp_model, criterion, optimizer, images, targets, args.clip)
                except NonFiniteCostError as err:
                    raise _diverged(step, str(err), last_saved, args) from err
                if not all(math.isfinite(v) for v in losses.values()):
                    bad = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if not math.isfinite(v))
                    raise _diverged(step, f"a loss is not finite ({bad})", last_saved, args)
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                train_seconds += time.time() - start
                progress.update(losses)
                if step % args.log_every == 0 or step == total_steps:
                    log({"step": step, "epoch": epoch, "train_seconds": round(train_seconds, 2), "lr": lr,
                         **{k: round(v, 5) for k, v in losses.items()}})
                finished = step >= total_steps
                time_up, signalled = _should_stop(args, train_seconds, stop, dist_info)
                if finished or time_up or signalled:
                    break
                if args.eval_every and step % args.eval_every == 0:
                    run_evaluation()
                if save_every and step % save_every == 0:
                    save()
                if governor.update() != threads:
                    threads = governor.threads
                    progress.write(f"step {step}: {threads} thread(s) now (other programs' load changed)")
                start = time.time()  # evaluation and saving are not training time
            else:
                continue
            break
    finally:
        progress.close()
    save()
    signal_name = signal.Signals(stop.signal).name if stop.signal is not None else "SIGTERM"
    if not finished and dist_info.is_main:
        reason = signal_name if signalled else f"--max-minutes {args.max_minutes}"
        print(f"{reason}: stopped at step {step} of {total_steps} and saved {folder.file(CHECKPOINT_FILE)}. "
              f"Resume with:\n  {resume_command(argv, dist_info.world_size)}", flush=True)
    if signalled:
        return {"step": step, "train_seconds": round(train_seconds, 1), "stopped_by": signal_name}
    record, result = run_evaluation(final=True)
    if dist_info.is_main:
        print(f"saved {folder.file(CHECKPOINT_FILE)} and {folder.file(MODEL_FILE)} "
              f"at step {step} ({train_seconds / 60:.1f} min of training)", flush=True)
        if result is not None:
            print(f"PQ on the {len(val_set)} held-out images after step {step}:")
            print(format_pq_table(result))
    return record


def _pq_fields(summary: dict) -> dict:
    """``{"pq_all": ..., "sq_all": ..., "rq_things": ...}`` from a PQ summary, rounded for the log."""
    return {f"{k}_{group.lower()}": round(summary[group][k], 4)
            for group in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq")}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """``python -m detr_explained.train`` (``book/07_train_it_yourself.ipynb``).

    Returns the final record (see :func:`train`). A mistake in the options, the data or a
    checkpoint ends it with one ``error:`` line and exit status 2 (``--traceback`` shows where).
    """
    argv = list(sys.argv[1:] if argv is None else map(str, argv))

    def body(args: argparse.Namespace) -> dict:
        check_options(args)  # before the process group: a bad option needs no peers
        dist_info = setup_distributed()
        try:
            return train(args, dist_info, argv)
        finally:
            if dist_info.enabled:
                dist.destroy_process_group()

    return cli.run_command(build_parser(), body, argv)


if __name__ == "__main__":
    record = main()
    if record.get("stopped_by"):
        sys.exit(EXIT_INTERRUPTED[signal.Signals[record["stopped_by"]]])
