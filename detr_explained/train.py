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
        [--lr-backbone LR] [--weight-decay 1e-4] [--clip 0.1] [--lr-drop STEP | --lr-drop-minutes M]
        [--eos-coef WEIGHT (default: the config's eos_coef)] [--set FIELD=VALUE ...]
        [--eval-every K] [--eval-threshold T (default: the config's keep_threshold)] [--seed 0] [--resume] [--overwrite] [--num-workers 0]
        [--progress bar|lines] [--hflip 0.5] [--ema DECAY]
        [--init-from detr-tiny-synthetic|FILE] [--stage both|boxes|masks]

    torchrun --nproc_per_node=2 -m detr_explained.train ...      (the same, in 2 processes)

What it writes in RUN_DIR (only process 0 writes):

- ``checkpoint.pth``: everything needed to go on: ``model`` (float32 state dict), ``optimizer``,
  ``step``, ``epoch``, ``config`` (the DETRConfig as a dict), ``args`` (the command's options as
  a dict), ``rng`` (each process's random state) and ``train_seconds``. ``--resume`` continues
  from it exactly: the same step count, optimiser state, data order and random numbers (the
  options that shape the updates, RESUMED_OPTIONS, come from the checkpoint too).
- ``model.pth``: the weights to ship (``model``, in float16 by default, ``--model-dtype``: half
  the size) with the ``config`` and ``categories``; ``evaluate.load_trained_model`` and
  ``build_model("detr-tiny-synthetic", checkpoint=...)`` read it, and ``--init-from`` starts a
  new run from it.
- ``log.jsonl``: one JSON line per logged step (losses, learning rate, seconds) and per
  evaluation (PQ, SQ, RQ), for plotting.

Training from scratch: the official recipe fine-tunes an ImageNet-pretrained ResNet whose batch
norm is frozen, with a backbone learning rate of 1e-5. Offline there are no ImageNet weights, so
the default preset ``detr-tiny-synthetic`` uses ordinary batch norm, and the backbone learns at
the same rate as the rest (``--lr-backbone`` defaults to ``--lr`` when the batch norm is not
frozen, to the official 1e-5 when it is): at 1e-5 a random ResNet would hardly move.

Fine-tuning (``--init-from``) and the official two-stage recipe (``--stage boxes``, then
``--stage masks``) are explained in ``book/09_your_own_dataset.ipynb`` (``detr_explained.recipes``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from typing import Optional, Sequence

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import cli
from .coco_panoptic import CocoPanoptic
from .config import CONFIGS, DETRConfig, get_config, saved_config_fields
from .distributed import Distributed, setup_distributed, shutdown
from .evaluate import DEFAULT_CONFIG, category_list, check_categories
from .hub import build_model, check_config_overrides, load_checkpoint
from .losses import EOS_COEF, LOSS_WEIGHTS, SetCriterion
from .loop import (CLIP_MAX_NORM, LR, LR_DROP_FACTOR, LR_PRETRAINED_BACKBONE, PRECISIONS, WEIGHT_DECAY,  # noqa: F401
                   Progress, StopRequest, Trainer, TrainingStopped, build_optimizer, default_lr_backbone,
                   is_backbone_parameter, pq_fields, set_learning_rate, train_step)
from .merge import KEEP_THRESHOLD
from .recipes import STAGES, build_from_initial, freeze_for_stage, freeze_pretrained_stem, read_initial_weights, \
    same_categories, stage_loss_weights
from .runs import (CHECKPOINT_FILE, LOG_FILE, MODEL_FILE, RESUMED_OPTIONS, RUN_FILES, RunFolder,  # noqa: F401
                   load_training_checkpoint, resume_command, restore_training_options, save_checkpoint)
from .threads import ThreadGovernor, parse_threads
from .training_data import (HFLIP_PROBABILITY, base_dataset, epoch_loader, random_hflip,  # noqa: F401
                            split_datasets, to_device)

# Where each part lives: this module is the command (its options, their checks, and building the
# run); detr_explained.loop the step and the loop (Trainer); detr_explained.runs the run folder and
# its checkpoints; detr_explained.distributed the process group; detr_explained.training_data the
# data; detr_explained.recipes fine-tuning (--init-from) and the stages (--stage). The names above
# are imported here too, so ``train.train_step`` and the like keep working.

# Exit status of a run stopped by Ctrl-C (SIGINT) or SIGTERM after saving: 128 + the signal.
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


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
    model.add_argument("--init-from", default=None, metavar="SOURCE",
                       help="start from trained weights instead of random ones (fine-tuning): "
                            "detr-tiny-synthetic (shipped) or a model.pth / checkpoint.pth of this command. "
                            "The model takes that file's config; for other categories than the file's, the "
                            "class head is re-initialised and everything else kept")
    model.add_argument("--stage", choices=STAGES, default="both",
                       help="both (default): everything learns, all losses; boxes: the box detector alone "
                            "(stage 1 of the official recipe, no masks); masks: the attention maps and mask "
                            "head on a frozen box model given by --init-from (stage 2)")
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
    drop = optim.add_mutually_exclusive_group()
    drop.add_argument("--lr-drop", type=cli.positive_int, default=None,
                      help=f"multiply every learning rate by {LR_DROP_FACTOR} from this step on")
    drop.add_argument("--lr-drop-minutes", type=cli.positive_float, default=None, metavar="MINUTES",
                      help=f"multiply every learning rate by {LR_DROP_FACTOR} once this many minutes of "
                           "training have passed (by process 0's clock, as --max-minutes): the drop comes "
                           "at the same point of a timed run on a slower or busier machine; the step it "
                           "came at is saved as --lr-drop, so --resume keeps it")
    optim.add_argument("--loss-weight", dest="loss_weights", action="append", default=[],
                       type=parse_loss_weight, metavar="LOSS=WEIGHT",
                       help="change the weight of one loss in the total, e.g. --loss-weight loss_dice=2 "
                            "(repeatable; losses: " + ", ".join(LOSS_WEIGHTS) + "; default: the official "
                            "weights, " + ", ".join(f"{k.removeprefix('loss_')} {v:g}" for k, v in LOSS_WEIGHTS.items())
                            + "; the auxiliary decoder layers' losses take the same weights)")
    optim.add_argument("--eos-coef", type=cli.positive_float, default=None, metavar="WEIGHT",
                       help="the cross-entropy weight of the \"no object\" class (default: the model "
                            f"config's eos_coef: the official {EOS_COEF}, set for 100 queries of which about 93 "
                            "match nothing, or 1 for detr-tiny-synthetic, whose dozen queries about half "
                            "match nothing). It changes what a class score means: give the keep threshold "
                            "that goes with it with --set keep_threshold=...")
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
    run.add_argument("--eval-threshold", type=cli.score_threshold, default=None,
                     help="class score above which a query is kept in evaluation, from 0 up to 1 "
                          f"(default: the model config's keep_threshold: the official {KEEP_THRESHOLD}, "
                          "0.4 for detr-tiny-synthetic)")
    run.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="the forward in float32, or under torch.autocast in bfloat16: about 1.6x "
                          "as fast on a CPU with AVX512-BF16 or AMX (benchmarks/train_step_speed.py); "
                          "weights, optimiser, matching and losses stay float32")
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


def parse_loss_weight(text: str) -> tuple[str, float]:
    """``"loss_dice=2"`` -> ``("loss_dice", 2.0)``: one loss weight for ``--loss-weight``
    (``book/07_train_it_yourself.ipynb``)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not raw:
        raise argparse.ArgumentTypeError(f"{text!r}: give LOSS=WEIGHT, e.g. loss_dice=2")
    if key not in LOSS_WEIGHTS:
        raise argparse.ArgumentTypeError(f"{key!r} is not one of the losses; choose from {', '.join(LOSS_WEIGHTS)}")
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the weight must be a number, e.g. {key}=2") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the weight must be a finite number of 0 or more")
    return key, value


def parse_config_assignment(text: str) -> tuple[str, object]:
    """``"num_queries=30"`` -> ``("num_queries", 30)``: one DETRConfig field for ``--set``, its value
    read as the field's type (true/false for switches, none for an optional size)
    (``book/07_train_it_yourself.ipynb``)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    fields = {f.name: str(f.type) for f in dataclasses.fields(DETRConfig)}
    if not sep or not raw:
        raise argparse.ArgumentTypeError(f"{text!r}: give FIELD=VALUE, e.g. dilation=true")
    if key == "eos_coef":
        raise argparse.ArgumentTypeError(f"{text!r}: the \"no object\" weight is set with --eos-coef {raw}")
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
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{key} takes a number, e.g. {key}={getattr(DETRConfig(), key)!r}") from None
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
    init_from = getattr(args, "init_from", None)
    architecture = [key for key, _ in args.config_set if key != "keep_threshold"]
    if init_from is not None and not args.resume and (args.config is not None or architecture):
        raise cli.UsageError(f"--init-from {init_from} takes the model's config from that file: leave out "
                             "--config and --set (only --set keep_threshold=... may change)")
    if getattr(args, "stage", "both") == "masks" and init_from is None and not args.resume:
        raise cli.UsageError("--stage masks trains the attention maps and the mask head on a frozen box model: "
                             "give that model with --init-from (e.g. the model.pth of a --stage boxes run on "
                             "the same data)")
    try:
        stage_loss_weights(getattr(args, "stage", "both"), dict(getattr(args, "loss_weights", [])))
    except ValueError as error:
        raise cli.UsageError(f"--loss-weight: {error}") from None
    if args.val_data is not None and os.path.realpath(args.val_data) == os.path.realpath(args.data):
        raise cli.UsageError("--val-data is the training set itself: PQ on images the model trains on "
                             "says little; leave --val-data out to hold out the last images of --data")


def dataset_categories(dataset: CocoPanoptic) -> list[dict]:
    """The categories a run trains on, as saved in its files: id, name and isthing, by id
    (``book/07_train_it_yourself.ipynb``)."""
    return category_list(dataset.categories.values())


# ----------------------------------------------------------------------------------------------
# The run: everything checked and built, then the loop (detr_explained.loop.Trainer)
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

    Everything that can be wrong with the options, the data, a resumed checkpoint and the weights
    of ``--init-from`` is checked before the run folder is touched; a failure before the first
    save leaves the folder as it was.
    """
    check_options(args)
    train_set, val_set = split_datasets(args)
    base = base_dataset(train_set)
    num_classes = base.num_classes
    categories = dataset_categories(base)

    resumed = load_training_checkpoint(args.out) if args.resume else None
    initial = None
    if resumed is not None:
        check_categories(resumed.get("categories"), resumed["config"].get("num_classes"), base,
                         os.path.join(args.out, CHECKPOINT_FILE))
        restore_training_options(args, resumed["args"], announce=dist_info.is_main)
        # The model is the one saved, whatever --config says now.
        fields = saved_config_fields(resumed["config"])
        asked = dict(args.config_set, num_classes=num_classes)
        if ((args.config is not None or args.config_set)
                and dataclasses.asdict(get_config(args.config or DEFAULT_CONFIG, **asked)) != fields):
            raise cli.UsageError(f"--config/--set differ from the config saved in "
                                 f"{os.path.join(args.out, CHECKPOINT_FILE)}; leave them out to resume")
        config_name, overrides = DEFAULT_CONFIG, fields
    else:
        config_name, overrides = args.config or DEFAULT_CONFIG, dict(args.config_set, num_classes=num_classes)
        if args.eos_coef is not None:   # the model's config records the weight it is trained with
            overrides["eos_coef"] = args.eos_coef
        if args.init_from is not None:
            initial = read_initial_weights(args.init_from)
            if args.stage == "masks" and not same_categories(initial, categories):
                raise cli.UsageError(
                    f"--stage masks --init-from {args.init_from}: that model was trained on other categories "
                    "than --data's, so its class head would be re-initialised and then frozen. Train the box "
                    "model on this data first (--stage boxes --init-from ...), then the masks on it")
    if args.val_data is not None and val_set is not None:
        check_categories(categories, num_classes, base_dataset(val_set), f"--data {args.data}",
                         what="the training set")

    folder = RunFolder(args.out, args.resume, args.overwrite)
    governor = _thread_governor(args, dist_info)
    threads_before = torch.get_num_threads()
    try:
        with StopRequest() as stop:
            if dist_info.is_main:
                folder.open()
            dist_info.barrier()
            trainer, what, rates = _build_run(args, dist_info, argv, train_set, val_set, categories, resumed,
                                              initial, config_name, overrides, folder, governor, stop)
            return trainer.run(what, rates)
    except BaseException:
        if dist_info.is_main:
            folder.abandon()
        raise
    finally:
        torch.set_num_threads(threads_before)


def _build_run(args, dist_info: Distributed, argv, train_set, val_set, categories, resumed, initial,
               config_name, overrides, folder: RunFolder, governor: ThreadGovernor, stop: StopRequest):
    """The model (random, --init-from's or the resumed one), its frozen parts (--stage), the
    optimiser, criterion and average, as a Trainer; and the two halves of the line it prints."""
    torch.manual_seed(args.seed)  # the same initial weights in every process
    if initial is not None:
        model, kept_head = build_from_initial(initial, categories, overrides["num_classes"],
                                              **{k: overrides[k] for k in ("eos_coef", "keep_threshold") if k in overrides})
        described = (f"{args.init_from} (fine-tuned: "
                     + ("all weights kept, the categories are the same)" if kept_head else
                        "class head re-initialised for these categories, everything else kept)"))
    else:
        model = build_model(config_name, **overrides)
        described = config_name if resumed is None else "the resumed model"
    model = model.to(dist_info.device).train()
    stage = args.stage
    # a loss on every decoder layer's predictions, as in DETR; the frozen detector of the masks
    # stage has nothing to learn from them
    model.detr.aux_loss = stage != "masks"
    config = model.config
    # the weight and the threshold the model's config carries, unless the command gave them
    args.eos_coef = config.eos_coef if args.eos_coef is None else args.eos_coef
    args.eval_threshold = config.keep_threshold if args.eval_threshold is None else args.eval_threshold
    if config.frozen_batchnorm and initial is None and dist_info.is_main:
        print("warning: this config freezes batch norm with identity statistics; without "
              "pretrained weights the ResNet is unnormalised. For training from scratch use "
              "--config detr-tiny-synthetic or a config with frozen_batchnorm=False.", file=sys.stderr)
    learning = freeze_for_stage(model, stage)
    if config.frozen_batchnorm and stage != "masks":   # a pretrained backbone, trained as officially
        learning -= freeze_pretrained_stem(model)
    lr_backbone = default_lr_backbone(args, config.frozen_batchnorm)
    optimizer = build_optimizer(model, args.lr, lr_backbone, args.weight_decay)
    criterion = SetCriterion(config.num_classes,
                             weights=stage_loss_weights(stage, dict(args.loss_weights)),
                             eos_coef=args.eos_coef).to(dist_info.device)

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

    trainer = Trainer(args, dist_info, argv, model, optimizer, criterion, ema, train_set, val_set, categories,
                      folder, governor, stop, step=step, train_seconds=train_seconds, resumed=resumed is not None)
    total = sum(p.numel() for p in model.parameters())
    size = f"{total / 1e6:.1f} M parameters" + (f", {learning / 1e6:.2f} M of them learning in the {stage} stage"
                                                if stage != "both" else "")
    what = (f"training {described} ({size}) on {len(train_set)} images, "
            f"{dist_info.world_size} process(es) x batch {args.batch_size}")
    rates = f"lr {args.lr}, backbone lr {lr_backbone}"
    if args.loss_weights:
        rates += ", loss weights " + ", ".join(f"{name} {weight:g}" for name, weight in criterion.weights.items())
    if args.lr_drop_minutes is not None and args.lr_drop is None:
        rates += f", x {LR_DROP_FACTOR:g} after {args.lr_drop_minutes:g} min of training"
    if args.eos_coef != EOS_COEF:
        rates += f", \"no object\" weight {args.eos_coef:g}"
    if val_set is not None:
        rates += f"; PQ with queries kept above {args.eval_threshold:g}"
    return trainer, what, rates


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
            shutdown(dist_info)

    return cli.run_command(build_parser(), body, argv)


if __name__ == "__main__":
    record = main()
    if record.get("stopped_by"):
        sys.exit(EXIT_INTERRUPTED[signal.Signals[record["stopped_by"]]])
