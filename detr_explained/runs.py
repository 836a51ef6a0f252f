"""A training run's folder: what is in it, how it is written, and what is never lost.

Explained in ``book/07_train_it_yourself.ipynb``. A run folder holds three files:
``checkpoint.pth`` (everything to go on), ``model.pth`` (the weights to ship) and ``log.jsonl``
(one line per logged step and evaluation); :func:`save_checkpoint` writes the first two and
:func:`load_training_checkpoint` reads a checkpoint back for ``--resume``. The rules that keep a
run safe:

- A folder that holds a run is used again only with ``--resume`` (go on) or ``--overwrite``
  (start again); it is never replaced by accident.
- With ``--overwrite`` the old run stays as it is until the new run has saved its first
  checkpoint: the new log is written beside it (``log.jsonl.new``) and the three old files are
  replaced together at that first save. A start that fails, for a bad option, a bad dataset or
  anything else, leaves the old run untouched and removes what the new one had begun.
- Every file is written under a temporary name and renamed over the old one only when it is
  complete, so a run stopped mid-write, or a full disk, leaves the last good checkpoint and no
  partial file.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shlex
import sys
from typing import Optional, Sequence

import torch

from .losses import EOS_COEF

CHECKPOINT_FILE = "checkpoint.pth"
MODEL_FILE = "model.pth"
LOG_FILE = "log.jsonl"
RUN_FILES = (CHECKPOINT_FILE, MODEL_FILE, LOG_FILE)
# Suffixes of the files a run writes before they are complete; they never outlive a save.
TMP_SUFFIX = ".tmp"
NEW_SUFFIX = ".new"


class RunFolderError(OSError):
    """A run folder that cannot be used or written as asked; the message says what to do
    (``book/07_train_it_yourself.ipynb``)."""


class RunFolder:
    """The run folder of one training command (``book/07_train_it_yourself.ipynb``).

    ``problem()`` says why it cannot be used as asked (before anything is written);
    ``open()`` creates it; ``log(record)`` appends a line; ``save(checkpoint, model)`` writes the
    two weight files; ``abandon()`` removes what a failed start wrote, leaving an old run as it was.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False, overwrite: bool = False):
        self.path = os.fspath(path)
        self.resume, self.overwrite = resume, overwrite
        self.saved = False  # has this run saved a checkpoint yet?
        self._replacing = False
        self._created = False

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def existing(self) -> list[str]:
        """The run files already in the folder."""
        return [name for name in RUN_FILES if os.path.exists(self.file(name))]

    def problem(self) -> Optional[str]:
        """Why the folder cannot be used as asked, or None. Writes nothing."""
        if self.resume and self.overwrite:
            return "--resume and --overwrite contradict each other: pick one"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            return f"--out {self.path} is a file, not a folder: give a folder for the run"
        if self.resume:
            if not os.path.isfile(self.file(CHECKPOINT_FILE)):
                return f"--resume: there is no {self.file(CHECKPOINT_FILE)} to continue from"
            return None
        existing = self.existing()
        if existing and not self.overwrite:
            return (f"{self.path} already holds a run ({', '.join(existing)}): pass --resume to continue "
                    "it or --overwrite to start again and replace it")
        return None

    def open(self) -> None:
        """Create the folder. With --overwrite of an old run, the new log goes beside the old one."""
        self._created = not os.path.isdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        self._replacing = self.overwrite and bool(self.existing())
        if self._replacing or not self.resume:
            # A new run's log starts empty: a stale log.jsonl.new of a failed start goes first.
            stale = self.file(LOG_FILE + NEW_SUFFIX)
            if os.path.exists(stale):
                os.remove(stale)

    @property
    def log_path(self) -> str:
        return self.file(LOG_FILE + NEW_SUFFIX if self._replacing else LOG_FILE)

    def log(self, record: dict) -> None:
        """Append one JSON line to the run's log."""
        line = json.dumps(record) + "\n"
        try:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as err:
            raise RunFolderError(err.errno, f"could not write to {self.log_path}: {err.strerror}") from err

    def save(self, files: dict[str, object]) -> None:
        """Write ``{file name: content}`` (torch.save's format): each under a temporary name first,
        then all renamed. On an error (a full disk), the temporary files are removed and the files
        of the last save stay as they were."""
        written = []
        try:
            for name, content in files.items():
                buffer = io.BytesIO()
                torch.save(content, buffer)  # in memory first, so a write error is a plain OSError
                tmp = self.file(name + TMP_SUFFIX)
                written.append(tmp)
                with open(tmp, "wb") as handle:
                    handle.write(buffer.getbuffer())
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as err:
            for tmp in written:
                _remove_quietly(tmp)
            raise RunFolderError(err.errno, f"could not write {written[-1]}: {err.strerror}") from err
        for name in files:
            os.replace(self.file(name + TMP_SUFFIX), self.file(name))
        if self._replacing:
            # the new run has a checkpoint now: its log takes the old one's place
            os.replace(self.file(LOG_FILE + NEW_SUFFIX), self.file(LOG_FILE))
            self._replacing = False
        self.saved = True

    def abandon(self) -> None:
        """After a failure: remove what this run wrote that is not a complete save. An old run
        being replaced stays as it was; a new folder with nothing saved is removed."""
        for name in RUN_FILES:
            _remove_quietly(self.file(name + TMP_SUFFIX))
        if self._replacing:
            _remove_quietly(self.file(LOG_FILE + NEW_SUFFIX))
        elif not self.saved and not self.resume:
            _remove_quietly(self.file(LOG_FILE))
            if self._created:
                try:
                    os.rmdir(self.path)  # only if empty: nothing of the user's is touched
                except OSError:
                    pass


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def resume_command(argv: Sequence[str], world_size: int = 1) -> str:
    """The command that continues a run started with ``argv`` (``book/07_train_it_yourself.ipynb``):
    the same options, without ``--overwrite``, with ``--resume``."""
    kept = [arg for arg in argv if arg not in ("--overwrite", "--resume")]
    if world_size > 1:
        launcher = ["torchrun", f"--nproc_per_node={world_size}", "-m", "detr_explained.train"]
    else:
        launcher = ["python", "-m", "detr_explained.train"]
    return shlex.join([*launcher, *kept, "--resume"])


# ----------------------------------------------------------------------------------------------
# What a checkpoint holds
# ----------------------------------------------------------------------------------------------

# The keys every checkpoint.pth of the training command has.
CHECKPOINT_KEYS = ("model", "optimizer", "step", "config", "args", "rng", "train_seconds")

# The options a resumed run takes from its checkpoint, whatever the new command line says: they
# decide the data order and the updates, so changing them would not continue the same run.
# The others (--steps, --epochs, --max-minutes, --eval-every, --data paths, ...) may change.
RESUMED_OPTIONS = ("batch_size", "lr", "lr_backbone", "weight_decay", "clip", "lr_drop", "seed", "hflip",
                   "val_size", "model_dtype", "ema", "stage", "precision", "loss_weights", "eos_coef", "lr_drop_minutes")
# Options added after checkpoints were first written: what a checkpoint without them ran with.
RESUMED_DEFAULTS = {"loss_weights": [], "eos_coef": EOS_COEF, "lr_drop_minutes": None}


def _option_text(name: str, value) -> str:
    """How the note on a resumed option writes it: ``--lr 0.0003``, ``--loss-weight loss_dice=5``."""
    if name == "loss_weights":
        return " ".join(f"--loss-weight {loss}={weight:g}" for loss, weight in value) or "the official loss weights"
    return f"--{name.replace('_', '-')} {value}"


def save_checkpoint(folder: RunFolder, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    epoch: int, args: argparse.Namespace, rng: list[torch.Tensor],
                    train_seconds: float, categories: Optional[list[dict]] = None,
                    ema: Optional[torch.nn.Module] = None) -> None:
    """Write ``checkpoint.pth`` (to resume) and ``model.pth`` (to ship) (``book/07_train_it_yourself.ipynb``).

    Only plain types, tensors and dicts, so ``torch.load(..., weights_only=True)`` (what
    ``hub.read_checkpoint`` does) reads both. Both carry the dataset's ``categories`` (id, name,
    isthing), so evaluating or resuming on a dataset with other classes is refused, and the config,
    so that ``evaluate.load_trained_model`` rebuilds the same model from either. With ``--ema``
    (``ema``, a torch AveragedModel) the checkpoint also holds the averaged weights (``"ema"``),
    and ``model.pth`` ships those. Each file is written under a temporary name and renamed
    (:meth:`RunFolder.save`), so a run stopped mid-write or a full disk leaves the previous files intact.
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
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(loaded, dict) or key not in loaded]
    if missing:
        raise ValueError(f"{path} is not a checkpoint written by this training command (it lacks "
                         f"{', '.join(missing)}); a model.pth cannot be resumed: start again with --overwrite")
    return loaded


def restore_training_options(args: argparse.Namespace, saved: dict, announce: bool = True) -> None:
    """--resume: put the checkpoint's RESUMED_OPTIONS back into ``args``, saying on stderr which
    ones the new command line had changed (``book/07_train_it_yourself.ipynb``)."""
    saved = {**RESUMED_DEFAULTS, **saved}
    # A drop that --lr-drop-minutes made is saved as --lr-drop: not a change of the command line.
    timed_drop = saved.get("lr_drop_minutes") is not None
    changed = [f"{_option_text(name, saved[name])} (not {_option_text(name, getattr(args, name))})"
               for name in RESUMED_OPTIONS if name in saved and saved[name] != getattr(args, name, None)
               and not (name == "lr_drop" and timed_drop)
               and not (name == "eos_coef" and getattr(args, name, None) is None)]   # not given: the saved one
    for name in RESUMED_OPTIONS:
        if name in saved:
            setattr(args, name, saved[name])
    if changed and announce:
        print("note: resuming with the checkpoint's " + ", ".join(changed), file=sys.stderr)
