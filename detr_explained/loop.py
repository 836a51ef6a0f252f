"""The training loop: one step, the optimiser, and the run around it (saving, evaluating, stopping).

Explained in ``book/07_train_it_yourself.ipynb``. One training step is the whole method
(:func:`train_step`); :class:`Trainer` repeats it over the epochs and does the bookkeeping:
the learning-rate schedule, the log, a checkpoint every so often, PQ on the held-out images, the
clock (``--max-minutes``) and Ctrl-C / SIGTERM (:class:`StopRequest`), in one process or several.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from typing import Optional, Sequence

import torch
from torch.optim.swa_utils import AveragedModel

from .distributed import Distributed
from .evaluate import evaluate
from .losses import SetCriterion, float32_outputs
from .matcher import NonFiniteCostError
from .pq import PQResult, format_pq_table
from .recipes import set_train_mode
from .runs import CHECKPOINT_FILE, MODEL_FILE, RunFolder, resume_command, save_checkpoint
from .threads import ThreadGovernor
from .training_data import epoch_loader, random_hflip, to_device

# The official optimiser settings (DETR's main.py): AdamW, 1e-4 for the transformer and heads,
# 1e-5 for a pretrained backbone, weight decay 1e-4, gradients clipped to norm 0.1.
LR = 1e-4
LR_PRETRAINED_BACKBONE = 1e-5
WEIGHT_DECAY = 1e-4
CLIP_MAX_NORM = 0.1
# At --lr-drop every learning rate is multiplied by this (the official StepLR: x0.1 at epoch 200).
LR_DROP_FACTOR = 0.1
# --precision: the forward in float32, or under torch.autocast in bfloat16 (weights stay float32).
PRECISIONS = ("float32", "bfloat16")


# ----------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------

def is_backbone_parameter(name: str) -> bool:
    """The ResNet's parameters, ``detr.backbone.0.body.*`` (with or without DDP's ``module.``)
    (``book/07_train_it_yourself.ipynb``)."""
    return ".backbone." in f".{name}"


def build_optimizer(model: torch.nn.Module, lr: float, lr_backbone: float,
                    weight_decay: float) -> torch.optim.AdamW:
    """AdamW with two parameter groups: everything else at ``lr``, the backbone at ``lr_backbone``
    (``book/07_train_it_yourself.ipynb``). Group 0 is the rest, group 1 the backbone. Frozen
    parameters (``requires_grad`` False) are left out."""
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
               images: list[torch.Tensor], targets: list[dict], clip: float,
               masks: bool = True, precision: str = "float32") -> dict[str, float]:
    """One optimiser step on one batch (``book/07_train_it_yourself.ipynb``); returns the losses.

    ``masks=False`` trains the box detector alone (``--stage boxes``): no mask is computed.
    ``precision="bfloat16"`` runs the forward under ``torch.autocast`` (convolutions and matrix
    products in bfloat16, the weights and the optimiser in float32); matching, losses and
    gradients' accumulation stay in float32 (``--precision``, ``benchmarks/train_step_speed.py``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device_type = images[0].device.type if images else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        if masks:
            # Matching happens inside the forward, so that only the matched queries' masks are
            # computed: the other masks get no loss, and skipping them saves about 1/6 of the step
            # (benchmarks/train_step_speed.py).
            outputs = model(images, select=criterion.match_for(targets))  # pred_logits (B, N, C+1), ...
        else:
            outputs = model(images, masks=False)      # pred_logits, pred_boxes, aux_outputs
    losses = criterion(float32_outputs(outputs), targets)        # {"loss_ce", ..., "loss_giou_0", ..., "loss"}
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
    optimizer.step()
    return {name: value.item() for name, value in losses.items()}


# ----------------------------------------------------------------------------------------------
# Progress, and stopping: Ctrl-C, SIGTERM, the clock, a diverging loss
# ----------------------------------------------------------------------------------------------

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


def pq_fields(summary: dict) -> dict:
    """``{"pq_all": ..., "sq_all": ..., "rq_things": ...}`` from a PQ summary, rounded for the log
    (``book/07_train_it_yourself.ipynb``)."""
    return {f"{k}_{group.lower()}": round(summary[group][k], 4)
            for group in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq")}


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------

class Trainer:
    """One run of the training command, from its first step (or the resumed one) to the last
    (``book/07_train_it_yourself.ipynb``).

    It is given everything already built and checked: the model (its weights loaded, its frozen
    parts frozen), the optimiser and criterion, the optional weight average ``ema``, the data, the
    run folder (opened) and the stop handler. :meth:`run` loops, logs, saves and evaluates, and
    returns the final evaluation's record. Only process 0 prints, evaluates and writes.
    """

    def __init__(self, args: argparse.Namespace, dist_info: Distributed, argv: Sequence[str],
                 model: torch.nn.Module, optimizer: torch.optim.Optimizer, criterion: SetCriterion,
                 ema: Optional[AveragedModel], train_set, val_set, categories: list[dict],
                 folder: RunFolder, governor: ThreadGovernor, stop: StopRequest,
                 step: int = 0, train_seconds: float = 0.0, resumed: bool = False):
        self.args, self.dist, self.argv = args, dist_info, list(argv)
        self.model, self.optimizer, self.criterion, self.ema = model, optimizer, criterion, ema
        self.train_set, self.val_set, self.categories = train_set, val_set, categories
        self.folder, self.governor, self.stop = folder, governor, stop
        self.step, self.train_seconds = step, train_seconds
        self.last_saved: Optional[int] = step if resumed else None
        self.stage = getattr(args, "stage", "both")
        # What evaluation sees and model.pth ships: the average with --ema.
        self.evaluated = ema.module if ema is not None else model
        self.trained = torch.nn.parallel.DistributedDataParallel(model) if dist_info.enabled else model
        self.batches_per_epoch = math.ceil(math.ceil(len(train_set) / dist_info.world_size) / args.batch_size)
        epochs = args.epochs if args.epochs is not None else 10
        self.total_steps = args.steps if args.steps is not None else epochs * self.batches_per_epoch
        self.save_every = args.save_every or args.eval_every or 0
        self.progress: Optional[Progress] = None

    # -- bookkeeping ----------------------------------------------------------------------------

    def log(self, record: dict) -> None:
        if self.dist.is_main:
            self.folder.log(record)

    def save(self) -> None:
        """checkpoint.pth and model.pth of the current step; every process takes part (their
        random states are saved), process 0 writes."""
        rng = self.dist.rng_states()
        if self.dist.is_main:
            try:
                save_checkpoint(self.folder, self.model, self.optimizer, self.step,
                                self.step // self.batches_per_epoch, self.args, rng, self.train_seconds,
                                self.categories, self.ema)
            except OSError as err:
                kept = (f"the checkpoint of step {self.last_saved} in {self.args.out} is intact"
                        if self.last_saved is not None else "nothing of this run was saved")
                resume = (f"resume: {resume_command(self.argv, self.dist.world_size)}"
                          if self.last_saved is not None else "run the command again")
                raise type(err)(err.errno, f"{err.strerror or err} while saving step {self.step}; {kept}, "
                                           f"and no partial file was left. Free some space, then {resume}") from err
        self.last_saved = self.step

    def evaluate(self, final: bool = False) -> tuple[dict, Optional[PQResult]]:
        """PQ on the held-out set, by process 0 while the others wait. With --ema the averaged
        weights are scored; the last evaluation also scores the last step's own weights
        (``raw_pq_all``, ...), so that the log shows what the average changed. The box stage
        has no trained mask head, so it has no PQ."""
        if self.val_set is None or self.stage == "boxes":
            return {}, None
        record, result = {}, None
        args = self.args
        if self.dist.is_main:
            eval_start = time.time()
            result = evaluate(self.evaluated, self.val_set, threshold=args.eval_threshold)
            summary = result.summary
            record = {"step": self.step, "train_seconds": round(self.train_seconds, 1), **pq_fields(summary)}
            if self.ema is not None and final:
                raw = evaluate(self.model, self.val_set, threshold=args.eval_threshold).summary
                record.update({f"raw_{k}": v for k, v in pq_fields(raw).items()})
            record["eval_seconds"] = round(time.time() - eval_start, 1)
            self.log(record)
            self.progress.write(
                f"step {self.step}: PQ {100 * summary['All']['pq']:.1f} "
                f"(things {100 * summary['Things']['pq']:.1f}, stuff {100 * summary['Stuff']['pq']:.1f}) "
                f"after {self.train_seconds / 60:.1f} min of training"
                + (f"; last step's own weights: PQ {100 * record['raw_pq_all']:.1f} "
                   f"(things {100 * record['raw_pq_things']:.1f})" if "raw_pq_all" in record else ""))
        self.dist.barrier()
        return record, result

    def _diverged(self, what: str) -> TrainingStopped:
        kept = (f"the checkpoint of step {self.last_saved} is kept in {self.args.out}"
                if self.last_saved is not None else "nothing of this run was saved")
        return TrainingStopped(f"step {self.step + 1}: {what}. Training diverged and stopped; {kept}. Start "
                               f"again with a lower --lr (now {self.args.lr}) or a --clip above 0 (now "
                               f"{self.args.clip}), and --overwrite")

    def _should_stop(self) -> tuple[bool, bool]:
        """(time is up, a stop signal came): --max-minutes by process 0's clock, a signal to any
        process; all processes get the same answer. The same exchange carries --lr-drop-minutes:
        when process 0's clock passes it, every process sets ``args.lr_drop`` to the next step, so
        the rate drops at the same step everywhere and the checkpoint keeps where it dropped."""
        args = self.args
        clock = self.dist.is_main
        time_up = clock and args.max_minutes is not None and self.train_seconds >= 60 * args.max_minutes
        drop_minutes = getattr(args, "lr_drop_minutes", None)
        drop_due = (clock and drop_minutes is not None and args.lr_drop is None
                    and self.train_seconds >= 60 * drop_minutes)
        time_up, signalled, drop_now = self.dist.any(time_up, self.stop.signal is not None, drop_due)
        if drop_now and args.lr_drop is None:
            args.lr_drop = self.step
            self.progress.write(f"step {self.step}: learning rate x {LR_DROP_FACTOR:g} from here on "
                                f"(--lr-drop-minutes {drop_minutes:g}: {self.train_seconds / 60:.1f} min of training)")
        return time_up, signalled

    # -- the loop -------------------------------------------------------------------------------

    def one_step(self, images, targets) -> tuple[dict[str, float], float]:
        """One step of the loop: schedule, augmentation, the step itself, the checks of its
        losses, the average; returns the losses and the learning rate."""
        args = self.args
        lr = set_learning_rate(self.optimizer, self.step, args.lr_drop)
        set_train_mode(self.model, self.stage)  # again after each evaluation, which sets eval mode
        images, targets = random_hflip(images, targets, args.hflip)
        images, targets = to_device(images, targets, self.dist.device)
        try:
            losses = train_step(self.trained, self.criterion, self.optimizer, images, targets, args.clip,
                                masks=self.stage != "boxes", precision=getattr(args, "precision", "float32"))
        except NonFiniteCostError as err:
            raise self._diverged(str(err)) from err
        if not all(math.isfinite(v) for v in losses.values()):
            bad = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if not math.isfinite(v))
            raise self._diverged(f"a loss is not finite ({bad})")
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return losses, lr

    def loop(self) -> tuple[bool, bool]:
        """Steps until the last one, the clock or a signal; returns (finished, signalled)."""
        args = self.args
        threads = self.governor.threads
        finished, signalled = self.step >= self.total_steps, False
        while not finished:
            epoch = self.step // self.batches_per_epoch
            loader = epoch_loader(self.train_set, self.dist, args, epoch,
                                  skip_batches=self.step % self.batches_per_epoch)
            start = time.time()  # the training clock counts loading the batch too
            for images, targets in loader:
                losses, lr = self.one_step(images, targets)
                self.train_seconds += time.time() - start
                self.progress.update(losses)
                if self.step % args.log_every == 0 or self.step == self.total_steps:
                    self.log({"step": self.step, "epoch": epoch, "train_seconds": round(self.train_seconds, 2),
                              "lr": lr, **{k: round(v, 5) for k, v in losses.items()}})
                finished = self.step >= self.total_steps
                time_up, signalled = self._should_stop()
                if finished or time_up or signalled:
                    return finished, signalled
                if args.eval_every and self.step % args.eval_every == 0:
                    self.evaluate()
                if self.save_every and self.step % self.save_every == 0:
                    self.save()
                if self.governor.update() != threads:
                    threads = self.governor.threads
                    self.progress.write(f"step {self.step}: {threads} thread(s) now (other programs' load changed)")
                start = time.time()  # evaluation and saving are not training time
        return finished, signalled

    def run(self, what: str, rates: str) -> dict:
        """The whole run. The line printed before the first step says ``what`` is trained on
        what, and the learning ``rates``. Returns the final evaluation's record, or
        ``{"step", "train_seconds", "stopped_by"}`` after a stop signal."""
        args, dist_info = self.args, self.dist
        self.governor.start()
        if dist_info.is_main and args.lr_drop is not None and args.lr_drop >= self.total_steps:
            print(f"note: --lr-drop {args.lr_drop} is not before the last step ({self.total_steps}): "
                  "the learning rate never drops", file=sys.stderr)
        drop_minutes = getattr(args, "lr_drop_minutes", None)
        if (dist_info.is_main and args.lr_drop is None and drop_minutes is not None
                and args.max_minutes is not None and drop_minutes >= args.max_minutes):
            print(f"note: --lr-drop-minutes {drop_minutes:g} is not before --max-minutes {args.max_minutes:g}: "
                  "the learning rate never drops", file=sys.stderr)
        if dist_info.is_main:
            print(f"{what}, {self.batches_per_epoch} steps per epoch, steps {self.step} -> {self.total_steps}; "
                  f"{rates}; {self.governor.threads} thread(s){'' if args.threads else ' (auto)'}", flush=True)
        self.progress = Progress(self.total_steps, self.step, dist_info.is_main, bar=args.progress == "bar")
        try:
            finished, signalled = self.loop()
        finally:
            self.progress.close()
        self.save()
        signal_name = signal.Signals(self.stop.signal).name if self.stop.signal is not None else "SIGTERM"
        if not finished and dist_info.is_main:
            reason = signal_name if signalled else f"--max-minutes {args.max_minutes}"
            print(f"{reason}: stopped at step {self.step} of {self.total_steps} and saved "
                  f"{self.folder.file(CHECKPOINT_FILE)}. Resume with:\n  "
                  f"{resume_command(self.argv, dist_info.world_size)}", flush=True)
        if signalled:
            return {"step": self.step, "train_seconds": round(self.train_seconds, 1), "stopped_by": signal_name}
        record, result = self.evaluate(final=True)
        if dist_info.is_main:
            print(f"saved {self.folder.file(CHECKPOINT_FILE)} and {self.folder.file(MODEL_FILE)} "
                  f"at step {self.step} ({self.train_seconds / 60:.1f} min of training)", flush=True)
            if result is not None:
                print(f"PQ on the {len(self.val_set)} held-out images after step {self.step}:")
                print(format_pq_table(result))
            elif self.stage == "boxes":
                print("no PQ: the box stage trains no mask head. Train it on this box model with "
                      f"--stage masks --init-from {self.folder.file(MODEL_FILE)}", flush=True)
        if not record and self.stage == "boxes":
            record = {"step": self.step, "train_seconds": round(self.train_seconds, 1)}
        return record
