"""Building models and loading the official checkpoints.

Explained in ``book/01_backbone.ipynb`` (building a model, loading weights). The official
panoptic checkpoints are files saved by the official training script: a dict whose "model"
entry is the state dict (490 keys for ResNet-50 and DC5, 745 for ResNet-101). Their names and
shapes match ``DETRPanoptic.state_dict()`` exactly, so they load with ``strict=True``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import urllib.error
from dataclasses import dataclass
from typing import Optional

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
# them, its measured training time and the PQ on held-out scenes (book/07_train_it_yourself.ipynb).
SHIPPED = ("detr-tiny-synthetic",)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def shipped_checkpoint(name: str) -> str:
    """The path of the weights shipped for ``name`` (``book/07_train_it_yourself.ipynb``)."""
    if name not in SHIPPED:
        raise ValueError(f"no weights ship with the package for {name!r}; shipped: {list(SHIPPED)}")
    path = os.path.join(WEIGHTS_DIR, f"{name}.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the shipped weights {path} are missing: this install of detr_explained is incomplete. "
            "Reinstall it (pip install --force-reinstall ...) or, in a clone, restore the file with "
            "'git checkout -- detr_explained/weights'")
    return path


def training_record(name: str) -> dict:
    """How the shipped weights of ``name`` were made: the command, the seed, the measured training
    time and the PQ table, as saved next to them (``book/07_train_it_yourself.ipynb``)."""
    path = os.path.join(os.path.dirname(shipped_checkpoint(name)), f"{name}.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model.

    Explained in ``book/01_backbone.ipynb``.
    """


def build_model(name: str = "detr-r50-panoptic", pretrained: bool = False,
                checkpoint: Optional[str | os.PathLike] = None, **overrides) -> DETRPanoptic:
    """A DETR panoptic model by name, in eval mode (``book/01_backbone.ipynb``).

    name:        one of ``detr_explained.CONFIGS``: "detr-r50-panoptic", "detr-r50-dc5-panoptic",
                 "detr-r101-panoptic", "detr-tiny", "detr-tiny-synthetic".
    pretrained:  the official checkpoint, downloaded (hash-checked, cached by torch.hub); for
                 "detr-tiny-synthetic" the weights this project trained, shipped in the package.
    checkpoint:  a local checkpoint file instead (e.g. one downloaded elsewhere).
    overrides:   config fields to change, e.g. ``num_classes=7`` (see DETRConfig).

    Without weights, the parameters are randomly initialised as in the official code.
    """
    config = get_config(name, **overrides)
    model = DETRPanoptic(config)
    if pretrained and checkpoint is None and name in SHIPPED:
        load_checkpoint(model, shipped_checkpoint(name))
    elif pretrained and checkpoint is None:
        state_dict = download_checkpoint(name)
        load_checkpoint(model, state_dict, source=CHECKPOINTS[name].url)
    elif checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


def download_checkpoint(name: str, model_dir: Optional[str] = None) -> dict:
    """The official checkpoint's state dict, downloaded once and cached (torch.hub).

    Explained in ``book/01_backbone.ipynb``.
    """
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


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file into a state dict, with clear errors for bad files.

    Explained in ``book/01_backbone.ipynb``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    official = {entry.filename: entry for entry in CHECKPOINTS.values()}.get(os.path.basename(path))
    if official is not None:
        digest = _sha256(path)
        if not digest.startswith(official.hash_prefix):
            raise CheckpointError(
                f"{path} has the name of an official checkpoint but its SHA-256 starts with "
                f"{digest[:8]}, not {official.hash_prefix}: it is corrupt or incomplete; "
                f"download it again from {official.url}"
            )
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}); "
            "the file may be truncated or not a checkpoint: download it again"
        ) from err
    return _state_dict_of(loaded, path)


def _state_dict_of(loaded, source: str) -> dict:
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(
            f"{source} holds no state dict (expected a dict of tensors, or one under the key 'model')"
        )
    return loaded


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(model: DETRPanoptic, checkpoint, source: Optional[str] = None) -> DETRPanoptic:
    """Load a state dict or checkpoint file into ``model`` with ``strict=True``.

    If the keys or shapes do not fit, raises CheckpointError listing the missing, unexpected
    and mis-shaped keys and naming the config the file most likely belongs to.

    Explained in ``book/01_backbone.ipynb``.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        state_dict = read_checkpoint(checkpoint)
    else:
        state_dict = _state_dict_of(checkpoint, source or "the given state dict")
    problems = compare_state_dict(model.state_dict(), state_dict)
    if problems:
        raise CheckpointError(
            f"{source or 'the state dict'} does not fit this model ({_describe(model.config)}):\n"
            + problems + "\n" + _likely_config(state_dict)
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def compare_state_dict(expected: dict, given: dict, limit: int = 10) -> str:
    """A readable list of missing, unexpected and mis-shaped keys ('' when they match).

    Explained in ``book/01_backbone.ipynb``.
    """
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
    overrides = {}
    if "detr.class_embed.weight" in state_dict:
        overrides["num_classes"] = state_dict["detr.class_embed.weight"].shape[0] - 1
    if "detr.query_embed.weight" in state_dict:
        overrides["num_queries"] = state_dict["detr.query_embed.weight"].shape[0]
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
    return f"Likely config: build_model({best!r}{args}) {fit}."
