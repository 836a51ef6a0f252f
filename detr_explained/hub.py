"""Building models and loading the official checkpoints.

Explained in ``book/01_backbone.ipynb`` (building a model, loading weights). The official
panoptic checkpoints are files saved by the official training script: a dict whose "model"
entry is the state dict (490 keys for ResNet-50 and DC5, 745 for ResNet-101). Their names and
shapes match ``DETRPanoptic.state_dict()`` exactly, so they load with ``strict=True``.

What is refused, with a message that says what to do instead: a file that is not a state dict
(a whole pickled model, a list, an empty dict), weights that do not fit the model (the keys are
listed and the likely config named), weights with NaN or infinite values (the keys are named),
and shipped weights whose SHA-256 differs from the one recorded beside them. A state dict saved
from ``DistributedDataParallel`` (every key starting with ``module.``) loads as it is.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
import os
import pickletools
import re
import urllib.error
import zipfile
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from .config import CONFIGS, DETRConfig, get_config
from .detr import DETRPanoptic


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint: where it is and how many keys it has (``book/01_backbone.ipynb``)."""

    url: str
    num_keys: int

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The first digits of the file's SHA-256, which torch.hub checks (check_hash=True)."""
        return re.search(r"-([a-f0-9]{8,})\.", self.filename).group(1)


CHECKPOINTS = {
    "detr-r50-panoptic": Checkpoint("https://dl.fbaipublicfiles.com/detr/detr-r50-panoptic-00ce5173.pth", 490),
    "detr-r50-dc5-panoptic": Checkpoint("https://dl.fbaipublicfiles.com/detr/detr-r50-dc5-panoptic-da08f1b1.pth", 490),
    "detr-r101-panoptic": Checkpoint("https://dl.fbaipublicfiles.com/detr/detr-r101-panoptic-40021d53.pth", 745),
}


# Weights this project trained and ships inside the package, so they need no download:
# detr_explained/weights/NAME.pth, with NAME.json beside it recording the exact command that made
# them, its measured training time, the PQ on held-out scenes and the file's SHA-256
# (book/07_train_it_yourself.ipynb).
SHIPPED = ("detr-tiny-synthetic",)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")

# How a damaged or missing shipped file is put back.
_RESTORE_ADVICE = ("In a clone of the repository restore it with 'git checkout -- detr_explained/weights'; "
                   "otherwise reinstall detr_explained (pip install --force-reinstall ...)")

# The key prefix DistributedDataParallel (and DataParallel) adds to every name of the model it
# wraps, so a state dict saved as ``ddp_model.state_dict()`` has it on every key.
DDP_PREFIX = "module."

# How many keys an error message names before it says "and N more".
_KEYS_SHOWN = 10


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model.

    Explained in ``book/01_backbone.ipynb``.
    """


def _check_name(name, what: str = "name") -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a model name (a string) such as 'detr-r50-panoptic', got "
                        f"{type(name).__name__} {name!r}; names: {sorted(CONFIGS)}")


def _shipped_paths(name: str) -> tuple[str, str]:
    """The weights and the record of ``name``, after checking that both are there."""
    _check_name(name)
    if name not in SHIPPED:
        raise ValueError(f"no weights ship with the package for {name!r}; shipped: {list(SHIPPED)}")
    path = os.path.join(WEIGHTS_DIR, f"{name}.pth")
    record = os.path.join(WEIGHTS_DIR, f"{name}.json")
    for needed in (path, record):
        if not os.path.isfile(needed):
            raise FileNotFoundError(
                f"the shipped weights {path} are missing"
                + ("" if needed == path else f" their record {record}")
                + f": this install of detr_explained is incomplete. {_RESTORE_ADVICE}")
    return path, record


def shipped_checkpoint(name: str) -> str:
    """The path of the weights shipped for ``name``, after checking the file's SHA-256 against
    the one recorded beside it (``book/07_train_it_yourself.ipynb``).

    A file whose hash differs (damaged, cut short, a Git LFS pointer instead of the file, or
    replaced by other weights) is refused with CheckpointError, saying how to restore it.
    """
    path, record_path = _shipped_paths(name)
    with open(record_path, encoding="utf-8") as handle:
        expected = json.load(handle).get("sha256")
    if not isinstance(expected, str):
        raise CheckpointError(
            f"{record_path} records no 'sha256' of the shipped weights, so they cannot be checked. "
            f"{_RESTORE_ADVICE}")
    digest = file_sha256(path)
    if digest != expected:
        raise CheckpointError(
            f"the shipped weights {path} are not the recorded file: their SHA-256 is {digest[:16]}..., "
            f"the record {os.path.basename(record_path)} says {expected[:16]}... The file is damaged "
            f"or was replaced. {_RESTORE_ADVICE}. (New weights are shipped with scripts/ship_weights.py, "
            "which records their hash.)")
    return path


def training_record(name: str) -> dict:
    """How the shipped weights of ``name`` were made: the command, the seed, the measured training
    time, the PQ table and the file's SHA-256, as saved next to them
    (``book/07_train_it_yourself.ipynb``)."""
    _, record_path = _shipped_paths(name)
    with open(record_path, encoding="utf-8") as handle:
        return json.load(handle)


def file_sha256(path: str | os.PathLike) -> str:
    """The full SHA-256 of a file, as 64 hex digits: what ``NAME.json`` records for shipped
    weights and what torch.hub checks the first digits of (``book/07_train_it_yourself.ipynb``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Building a model
# ----------------------------------------------------------------------------------------------

# The smallest value of each whole-number config field: a model needs at least one of each
# (layers, heads, queries, classes, channels).
_MIN_INT_FIELD = 1


def check_config_overrides(**overrides) -> None:
    """Raise a clear error unless every override is a DETRConfig field of the right type and range
    (``book/01_backbone.ipynb``): whole numbers of at least 1 for sizes, True/False for switches,
    a dropout in [0, 1), a positive temperature, a backbone name as text."""
    fields = {f.name: f.type for f in dataclasses.fields(DETRConfig)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"unknown config field(s) {unknown}; valid fields: {sorted(fields)}")
    for key, value in overrides.items():
        kind = str(fields[key])
        where = f"{key}={value!r}"
        if kind == "bool" and not isinstance(value, bool):
            raise TypeError(f"{where}: give True or False")
        if kind == "str" and not isinstance(value, str):
            raise TypeError(f"{where}: give a name as a string, e.g. {key}={getattr(DETRConfig(), key)!r}")
        if kind in ("int", "Optional[int]"):
            if value is None and kind == "Optional[int]":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                example = getattr(CONFIGS["detr-tiny"], key)
                raise TypeError(f"{where}: give a whole number (an int), e.g. {key}={example!r}")
            if value < _MIN_INT_FIELD:
                raise ValueError(f"{where}: give a whole number of at least {_MIN_INT_FIELD}")
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"{where}: give a finite number, e.g. {key}={getattr(DETRConfig(), key)!r}")
            if key == "dropout" and not 0 <= value < 1:
                raise ValueError(f"{where}: a dropout probability is from 0 up to (not including) 1, e.g. 0.1")
            if key == "eos_coef" and not value > 0:
                raise ValueError(f"{where}: the \"no object\" weight must be above 0, e.g. 0.1 (the official value)")
            if key == "keep_threshold" and not 0 <= value < 1:
                raise ValueError(f"{where}: a class-score threshold is from 0 up to (not including) 1, e.g. 0.85 "
                                 "(the official value)")
            if key == "pos_temperature" and not value > 0:
                raise ValueError(f"{where}: the positional encoding's temperature must be above 0, e.g. 10000.0")


def build_model(name: str = "detr-r50-panoptic", pretrained: bool = False,
                checkpoint: Optional[str | os.PathLike | Mapping] = None, **overrides) -> DETRPanoptic:
    """A DETR panoptic model by name, in eval mode (``book/01_backbone.ipynb``).

    name:        one of ``detr_explained.CONFIGS``: "detr-r50-panoptic", "detr-r50-dc5-panoptic",
                 "detr-r101-panoptic", "detr-tiny", "detr-tiny-synthetic".
    pretrained:  True: the official checkpoint, downloaded (hash-checked, cached by torch.hub); for
                 "detr-tiny-synthetic" the weights this project trained, shipped in the package
                 (checked against the SHA-256 recorded beside them).
    checkpoint:  a local checkpoint file instead (e.g. one downloaded elsewhere), or a state dict.
    overrides:   config fields to change, e.g. ``num_classes=7`` (see DETRConfig).

    Without weights, the parameters are randomly initialised as in the official code.
    """
    _check_name(name)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {type(pretrained).__name__} {pretrained!r}; "
                        "to load a file pass checkpoint=PATH")
    if pretrained and checkpoint is not None:
        raise ValueError("give either pretrained=True (the official or shipped weights) or "
                         "checkpoint=PATH (your own), not both")
    check_config_overrides(**overrides)
    config = get_config(name, **overrides)
    if config.hidden_dim % config.nheads:
        raise ValueError(f"hidden_dim={config.hidden_dim} is not divisible by nheads={config.nheads}: "
                         "each attention head gets hidden_dim / nheads channels; e.g. hidden_dim=256, nheads=8")
    model = DETRPanoptic(config)
    if pretrained and name in SHIPPED:
        load_checkpoint(model, shipped_checkpoint(name))
    elif pretrained:
        state_dict = download_checkpoint(name)
        load_checkpoint(model, state_dict, source=CHECKPOINTS[name].url)
    elif checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


def download_checkpoint(name: str, model_dir: Optional[str] = None) -> dict:
    """The official checkpoint's state dict, downloaded once and cached (torch.hub).

    Explained in ``book/01_backbone.ipynb``.
    """
    _check_name(name)
    if name not in CHECKPOINTS:
        raise ValueError(
            f"no official checkpoint for {name!r}; official ones: {sorted(CHECKPOINTS)}, shipped "
            f"with the package: {list(SHIPPED)}. For your own weights pass checkpoint=PATH"
        )
    entry = CHECKPOINTS[name]
    cache = model_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.hub.load_state_dict_from_url(
                entry.url, model_dir=model_dir, map_location="cpu", check_hash=True,
                file_name=entry.filename, weights_only=True,
            )
    except (urllib.error.URLError, OSError) as err:
        raise RuntimeError(
            f"could not download the {name} checkpoint from {entry.url} ({err}).\n"
            f"Download that file where you have internet and either put it in {cache} "
            f"or pass its path: build_model({name!r}, checkpoint='/path/to/{entry.filename}')"
        ) from err
    except RuntimeError as err:
        if "invalid hash value" in str(err):
            raise CheckpointError(
                f"the downloaded {entry.filename} does not match its hash {entry.hash_prefix}: "
                f"it is corrupt or incomplete. Delete it from {cache} and try again"
            ) from err
        raise
    return _state_dict_of(loaded, entry.url)


# ----------------------------------------------------------------------------------------------
# Reading a file
# ----------------------------------------------------------------------------------------------

def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file into a state dict, with clear errors for bad files.

    Reads only tensors and plain Python values (``weights_only=True``): unpickling anything else
    could run code. A file that holds a whole pickled model (``torch.save(model, path)``) is
    refused with the way to turn it into a state dict. A ``module.`` prefix on every key (a
    model saved from DistributedDataParallel) is removed.

    Explained in ``book/01_backbone.ipynb``.
    """
    return _state_dict_of(read_checkpoint_file(path), os.fspath(path))


def read_checkpoint_file(path: str | os.PathLike):
    """Everything a checkpoint file holds, as ``torch.load(path, weights_only=True)`` reads it
    (e.g. a training checkpoint's "model", "config", "step"), with the clear errors of
    :func:`read_checkpoint` for a folder, an empty or cut-short file, a whole pickled model, or an
    official file with the wrong hash (``book/01_backbone.ipynb``, ``book/07_train_it_yourself.ipynb``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a checkpoint path must be a str or os.PathLike, got {type(path).__name__}; "
                        "to load weights you already have in memory, pass the state dict to load_checkpoint")
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pt")))
        hint = f"; it holds {inside[:5]}: pass one of those" if inside else ""
        raise IsADirectoryError(f"{path!r} is a folder, not a checkpoint file{hint} "
                                "(a training run's folder has model.pth and checkpoint.pth)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    official = {entry.filename: entry for entry in CHECKPOINTS.values()}.get(os.path.basename(path))
    if official is not None:
        digest = file_sha256(path)
        if not digest.startswith(official.hash_prefix):
            raise CheckpointError(
                f"{path} has the name of an official checkpoint but its SHA-256 starts with "
                f"{digest[:8]}, not {official.hash_prefix}: it is corrupt or incomplete; "
                f"download it again from {official.url}"
            )
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): a download or save that was interrupted? "
                              "Download or save it again")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(_unreadable_message(path, err)) from err
    return loaded


# Where the classes of pickled models live: a name from these is a model object, not weights.
_MODEL_MODULES = ("torch.nn.", "detr_explained.")


def _unreadable_message(path: str, err: Exception) -> str:
    """Why torch.load(weights_only=True) refused ``path``, and what to do about it."""
    names = _pickled_names(path)
    models = [n for n in names if n.startswith(_MODEL_MODULES) and not n.startswith("torch.nn.parameter")]
    if models:
        return (
            f"{path} holds a whole pickled model object ({models[0]}), not a state dict: torch.save was "
            "given the model instead of its weights. In the code that saved it, save the weights: "
            "torch.save({'model': model.state_dict()}, path). If you trust this file (unpickling it can "
            "run any code), open it with obj = torch.load(path, weights_only=False) and pass the model's "
            "state dict, obj.state_dict(), to load_checkpoint(model, ...)")
    others = [n for n in names if n not in _SAFE_PICKLE_NAMES and not n.startswith("torch.")]
    if others:
        return (
            f"{path} holds Python objects other than tensors and plain values ({', '.join(others[:3])}), "
            "which are not read without trusting the file. Save {'model': model.state_dict()} instead; "
            "if you trust this file, open it with torch.load(path, weights_only=False) and pass its state "
            "dict to load_checkpoint(model, ...)")
    return (f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}); "
            "the file may be truncated (an interrupted download or save) or not a checkpoint at all: "
            "download or save it again")


# Names outside torch that a checkpoint's pickle may refer to and weights_only=True reads.
_SAFE_PICKLE_NAMES = ("collections.OrderedDict", "argparse.Namespace")


def _pickled_names(path: str) -> list[str]:
    """The classes and functions the pickle inside a torch.save file names, in order, read
    without running it (pickletools only lists opcodes); [] if it cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not pickles:
                return []
            data = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return []
    names, strings, memo = [], [], {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                names.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
            elif opcode.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[arg] = strings[-1]
            elif opcode.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif opcode.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                strings.append(memo[arg])
    except Exception:  # a damaged pickle: keep what was read
        pass
    return names


def _state_dict_of(loaded, source: str) -> dict:
    """The state dict in what torch.load returned: the dict itself, or its "model" (official and
    training files) or "state_dict" entry; with a DDP ``module.`` prefix removed."""
    if isinstance(loaded, torch.nn.Module):
        raise CheckpointError(
            f"{source} is a whole model object ({type(loaded).__name__}), not a state dict: pass "
            "its .state_dict() instead")
    if isinstance(loaded, Mapping):
        for key in ("model", "state_dict"):
            inner = loaded.get(key)
            if isinstance(inner, torch.nn.Module):
                raise CheckpointError(
                    f"{source}[{key!r}] is a whole model object ({type(inner).__name__}), not a state "
                    f"dict: save and pass {key!r}: model.state_dict() instead")
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{source} holds a {type(loaded).__name__}, not a state dict: expected a dict of tensors "
            "(model.state_dict()), or a dict with it under the key 'model' (what the official and "
            "this project's training scripts save)")
    if not loaded:
        raise CheckpointError(f"{source} holds an empty dict: no weights were saved in it. Save "
                              "{'model': model.state_dict()}")
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        shown = ", ".join(f"{k!r} ({type(loaded[k]).__name__})" for k in not_tensors[:5])
        raise CheckpointError(
            f"{source} holds no state dict: {len(not_tensors)} of its {len(loaded)} entries are not "
            f"tensors ({shown}). Expected a dict of tensors (model.state_dict()), or one under the key "
            "'model'")
    return strip_ddp_prefix(dict(loaded))


def strip_ddp_prefix(state_dict: Mapping) -> dict:
    """The state dict without the ``module.`` prefix that DistributedDataParallel (or DataParallel)
    puts on every key of the model it wraps; unchanged unless every key has it
    (``book/01_backbone.ipynb``, ``book/07_train_it_yourself.ipynb``)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"expected a state dict (a dict of tensors), got {type(state_dict).__name__}")
    keys = list(state_dict)
    if keys and all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in keys):
        return {k[len(DDP_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def check_finite(state_dict: Mapping, source: str = "the state dict") -> None:
    """Raise CheckpointError naming every tensor with NaN or infinite values, or without data
    (a "meta" tensor), in ``state_dict`` (``book/01_backbone.ipynb``,
    ``book/07_train_it_yourself.ipynb``).

    Such weights load without complaint and then predict nothing (a NaN class score keeps no
    query), so a diverged training run's file would pass for a bad model.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"expected a state dict (a dict of tensors), got {type(state_dict).__name__}")
    empty = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_meta]
    if empty:
        raise CheckpointError(f"{source} has {len(empty)} tensor(s) without data (on the 'meta' device): "
                              f"{_listed(empty)}. Save the weights after they are materialised")
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{source} has NaN or infinite values in {len(bad)} tensor(s): {_listed(bad)}. Weights like "
            "these predict nothing; they usually come from a training run that diverged (try a lower "
            "--lr or the last checkpoint saved before the loss became NaN)")


def _listed(keys: list, limit: int = _KEYS_SHOWN) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# ----------------------------------------------------------------------------------------------
# Loading into a model
# ----------------------------------------------------------------------------------------------

def load_checkpoint(model: DETRPanoptic, checkpoint, source: Optional[str] = None) -> DETRPanoptic:
    """Load a state dict or checkpoint file into ``model`` with ``strict=True``.

    ``checkpoint``: a path, or a state dict (or a dict with it under "model"). If the keys or
    shapes do not fit, raises CheckpointError listing the missing, unexpected and mis-shaped keys
    and naming the config the file most likely belongs to; weights with NaN or infinite values
    are refused too (:func:`check_finite`). A ``module.`` prefix on every key (DDP) is removed.

    Explained in ``book/01_backbone.ipynb``.
    """
    if not isinstance(model, DETRPanoptic):
        raise TypeError(f"load_checkpoint loads into a DETRPanoptic (from build_model(...)), got "
                        f"{type(model).__name__}")
    if source is not None and not isinstance(source, str):
        raise TypeError(f"source names where the weights come from, as a string; got {type(source).__name__}")
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        state_dict = read_checkpoint(checkpoint)
    elif isinstance(checkpoint, (Mapping, torch.nn.Module)):
        state_dict = _state_dict_of(checkpoint, source or "the given state dict")
    else:
        raise TypeError(f"checkpoint must be a file path or a state dict (a dict of tensors), got "
                        f"{type(checkpoint).__name__}")
    problems = compare_state_dict(model.state_dict(), state_dict)
    if problems:
        raise CheckpointError(
            f"{source or 'the state dict'} does not fit this model ({_describe(model.config)}):\n"
            + problems + "\n" + _likely_config(state_dict)
        )
    check_finite(state_dict, source or "the state dict")
    model.load_state_dict(state_dict, strict=True)
    return model


def compare_state_dict(expected: dict, given: dict, limit: int = 10) -> str:
    """A readable list of missing, unexpected and mis-shaped keys ('' when they match).

    Explained in ``book/01_backbone.ipynb``.
    """
    for name, value in (("expected", expected), ("given", given)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a state dict (a dict of tensors), got {type(value).__name__}")
    # BatchNorm's step counter: absent from the official files, not a weight; ignore it both sides
    expected = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in given.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
                 for k in expected if k in given and given[k].shape != expected[k].shape]
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            shown = "\n    ".join(items[:limit])
            more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"  {len(items)} {title} key(s):\n    {shown}{more}")
    return "\n".join(lines)


def _describe(config: DETRConfig) -> str:
    res5 = f" (Res5 {config.res5_channels} channels)" if config.res5_channels else ""
    return (f"{config.backbone}{res5}{' DC5' if config.dilation else ''}, d={config.hidden_dim}, "
            f"N={config.num_queries}, C={config.num_classes}")


def _likely_config(state_dict: dict) -> str:
    """Name the preset whose keys and shapes fit the state dict best, with overrides if needed."""
    if state_dict and not any(k.startswith("detr.") for k in state_dict) and "class_embed.weight" in state_dict:
        return ("These keys lack the 'detr.' prefix: this is a box-only DETR checkpoint, without the "
                "panoptic head; use a *-panoptic checkpoint.")
    prefixed = sum(k.startswith(DDP_PREFIX) for k in state_dict)
    ddp_note = (f" {prefixed} of its keys start with {DDP_PREFIX!r} (a model wrapped in "
                "DistributedDataParallel?) but not all, so the prefix was left on."
                if prefixed else "")
    overrides = {}
    if "detr.class_embed.weight" in state_dict:
        overrides["num_classes"] = state_dict["detr.class_embed.weight"].shape[0] - 1
    if "detr.query_embed.weight" in state_dict:
        overrides["num_queries"] = state_dict["detr.query_embed.weight"].shape[0]
    if any(v < _MIN_INT_FIELD for v in overrides.values()):
        overrides = {}
    best, best_score = None, None
    for name, config in CONFIGS.items():
        with torch.device("meta"):  # shapes only, no memory
            expected = DETRPanoptic(config.with_overrides(**overrides)).state_dict()
        score = sum(k not in state_dict or state_dict[k].shape != v.shape for k, v in expected.items())
        score += sum(k not in expected for k in state_dict if not k.endswith("num_batches_tracked"))
        if best_score is None or score < best_score:
            best, best_score = name, score
    changed = {k: v for k, v in overrides.items() if getattr(CONFIGS[best], k) != v}
    args = "".join(f", {k}={v}" for k, v in changed.items())
    fit = "fits exactly" if best_score == 0 else f"is the closest ({best_score} keys differ)"
    return f"Likely config: build_model({best!r}{args}) {fit}.{ddp_note}"
