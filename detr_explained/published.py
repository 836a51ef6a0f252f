"""The published DETR on a real photo, and what runs instead where nothing can be downloaded.

Explained in ``book/08_published_model.ipynb``. :func:`load_published` tries the real thing: the
official ``detr-r50-panoptic`` checkpoint (downloaded once by torch.hub, hash-checked, cached in
``<torch hub dir>/checkpoints``) and a COCO photo (downloaded once by :func:`fetch_image`, cached
in ``<torch hub dir>/detr_explained_images``). Where either download fails (no internet, a
firewall, a server that is down), it falls back to what ships with the package: the small DETR
trained on generated scenes (``detr-tiny-synthetic``) and one of its held-out scenes, with the
scene's ground truth. The result says which of the two it is (``online``) and, in one sentence
for the reader, why (``reason``); a page built from it runs either way.

What is *not* a reason to fall back: a checkpoint that is there but cannot be read, or a
download whose SHA-256 does not match the official one. That is a damaged file that someone has
to delete (the error says which); falling back would quietly publish the toy model instead of
the real one. Those raise :class:`detr_explained.hub.CheckpointError`.

Set the environment variable ``DETR_EXPLAINED_OFFLINE=1`` to take the fallback without trying a
download (the stored outputs of the chapter are the offline run's, and nbval compares with them).
"""
from __future__ import annotations

import hashlib
import http.client
import numbers
import os
import pickle
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import torch
from matplotlib.figure import Figure
from PIL import Image

from . import coco, explore, figures, synthetic
from .config import get_config
from .detr import DETRPanoptic
from .hub import CHECKPOINTS, CheckpointError, build_model
from .merge import select_queries
from .preprocessing import SHORTER_SIDE, load_image, prepare_image

# The official demo photo of DETR's notebooks: COCO val2017 image 39769, two cats lying on a pink
# couch, with two remote controls (640 x 480 pixels; 800 x 1066 after the official resize).
COCO_PHOTO_URL = "http://images.cocodataset.org/val2017/000000039769.jpg"
PUBLISHED_MODEL = "detr-r50-panoptic"
# What runs where nothing can be downloaded: weights shipped inside the package.
FALLBACK_MODEL = "detr-tiny-synthetic"
# Seconds a download may wait for the server (each connection and each read, not the whole file).
FETCH_TIMEOUT = 20.0
# The folder under torch.hub.get_dir() where fetch_image keeps the photos it downloaded.
IMAGE_CACHE_FOLDER = "detr_explained_images"
# Set to 1 (or true, yes) to take the fallback without trying any download.
OFFLINE_VARIABLE = "DETR_EXPLAINED_OFFLINE"

# ``{name}``: the model's name.
ONLINE_REASON = ("Online: the published {name} weights and the COCO photo were downloaded (or read "
                 "from the cache), so this page runs the real model on a real photo.")
# One sentence, the same whatever made the download fail (the details are in ``error``): the
# stored outputs of the chapter must not depend on the machine that ran it.
OFFLINE_REASON = ("This page ran offline, without the published model's weights or the COCO photo: it "
                  "runs on the small model this book trained and one of its held-out scenes instead; the "
                  "published site shows the real model on a COCO photo.")

_URL_SCHEMES = ("http", "https", "file")


class DownloadError(OSError):
    """A photo or a checkpoint that could not be downloaded: no internet, a firewall, a server
    that is down or answered with an error, or something that is not an image. The message says
    what to do instead. :func:`load_published` falls back on it (``book/08_published_model.ipynb``).
    """


# ----------------------------------------------------------------------------------------------
# Photos: downloaded once, cached
# ----------------------------------------------------------------------------------------------

def image_cache_dir() -> str:
    """Where :func:`fetch_image` keeps photos by default: ``<torch.hub.get_dir()>/detr_explained_images``
    (``book/08_published_model.ipynb``). torch.hub's folder follows ``TORCH_HOME``."""
    return os.path.join(torch.hub.get_dir(), IMAGE_CACHE_FOLDER)


def cached_image_path(url: str, cache_dir: Optional[str | os.PathLike] = None) -> str:
    """The file :func:`fetch_image` keeps the photo at ``url`` in: the URL's file name, after
    the first 8 hex digits of the URL's SHA-256, so that two URLs never share a file
    (``book/08_published_model.ipynb``)."""
    _check_url(url)
    folder = image_cache_dir() if cache_dir is None else os.fspath(cache_dir)
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "image"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return os.path.join(folder, f"{digest}-{name}")


def fetch_image(url: str, cache_dir: Optional[str | os.PathLike] = None,
                timeout: float = FETCH_TIMEOUT) -> Image.Image:
    """The photo at ``url`` as an RGB PIL image (``load_image``), downloaded once and cached
    (``book/08_published_model.ipynb``).

    url:       an http(s):// or file:// address.
    cache_dir: the folder to keep it in; default :func:`image_cache_dir`. A photo already there
               is read without opening the URL.
    timeout:   seconds to wait for the server, for the connection and for each read.

    The download is written to a temporary file in the cache folder, checked to be an image, and
    only then renamed to its place, so an interrupted download never leaves a half file that
    would be read next time. A download that fails raises :class:`DownloadError` saying where to
    put the file by hand. A cached file that cannot be read raises ValueError naming it.
    """
    path = cached_image_path(url, cache_dir)
    timeout = _check_timeout(timeout)
    if os.path.isfile(path):
        try:
            return load_image(path)
        except ValueError as err:
            raise ValueError(f"the cached photo {path} cannot be read ({err}); delete it and run again "
                             f"to download {url} afresh") from err
    data = _download(url, path, timeout)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            image = load_image(partial)
        except ValueError as err:  # e.g. a login page of a network that blocks the download
            raise DownloadError(
                f"what {url} sent ({len(data)} bytes) is not an image ({err}); download the photo "
                f"where you have internet and put it at {path}") from err
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return image


def _download(url: str, path: str, timeout: float) -> bytes:
    """The bytes at ``url``, or a DownloadError that says where to put the file by hand."""
    by_hand = f"download {url} where you have internet and put the file at {path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except urllib.error.URLError as err:  # HTTPError (404, 503 ...) is a URLError too
        raise DownloadError(f"could not download {url} ({getattr(err, 'reason', err)}); {by_hand}") from err
    except (OSError, http.client.HTTPException) as err:  # a timeout, a connection cut mid-way
        raise DownloadError(f"could not download {url} ({type(err).__name__}: {err}); {by_hand}") from err
    if not data:
        raise DownloadError(f"{url} sent an empty file; {by_hand}")
    return data


def _check_url(url) -> None:
    if not isinstance(url, str):
        raise TypeError(f"url must be an address as a string, e.g. {COCO_PHOTO_URL!r}, got {type(url).__name__}")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _URL_SCHEMES:
        raise ValueError(f"url must start with http://, https:// or file://, got {url!r}; for a file on "
                         "this machine use load_image(path) or pathlib.Path(path).resolve().as_uri()")


def _check_timeout(timeout) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds above 0, e.g. {FETCH_TIMEOUT}, got {timeout!r}")
    return float(timeout)


# ----------------------------------------------------------------------------------------------
# The published model, or the fallback
# ----------------------------------------------------------------------------------------------

@dataclass
class PublishedOrFallback:
    """What :func:`load_published` loaded: the model, the picture and how to name what it finds
    (``book/08_published_model.ipynb``).

    model:      a DETRPanoptic in eval mode: the published one, or the small fallback.
    model_name: its name, "detr-r50-panoptic" or "detr-tiny-synthetic".
    image:      the picture as the model's input, a normalised (3, H, W) tensor.
    source:     where the picture comes from (the photo's URL, or which held-out scene).
    names:      category id -> name (COCO's 133, or the synthetic scenes' 6).
    is_thing:   category id -> True for a thing, False for stuff.
    truth:      the picture's ground truth ``(ids, segments_info)``: None for the photo, the
                scene's for the fallback.
    online:     True for the published model on the photo.
    reason:     one sentence for the reader saying which of the two this is.
    error:      why the download failed (the exception's text), or None.
    """

    model: DETRPanoptic
    model_name: str
    image: torch.Tensor
    source: str
    names: Mapping[int, str]
    is_thing: Callable[[int], bool]
    truth: Optional[tuple]
    online: bool
    reason: str
    error: Optional[str] = None

    def trace(self) -> explore.Traced:
        """Run the model once on the picture and keep every intermediate, with the class names,
        the thing/stuff rule and the ground truth, for the explorers (``explore.trace_image``)."""
        return explore.trace_image(self.model, self.image, self.names, self.is_thing, self.truth)

    def describe(self) -> str:
        """A few lines saying what was loaded: model, weights, picture and its size."""
        config = self.model.config
        height, width = self.image.shape[-2:]
        weights = ("the official COCO checkpoint" if self.online
                   else "shipped with the package, trained on generated scenes")
        return "\n".join([
            f"online:   {self.online}",
            f"model:    {self.model_name} ({config.backbone}, N = {config.num_queries} queries, "
            f"C = {config.num_classes} classes + no object)",
            f"weights:  {weights}",
            f"picture:  {self.source}, {height} x {width} pixels as the model sees it",
        ])


def load_published(name: str = PUBLISHED_MODEL, url: str = COCO_PHOTO_URL, *,
                   offline: Optional[bool] = None, scene: int = synthetic.BOOK_SCENE,
                   cache_dir: Optional[str | os.PathLike] = None,
                   timeout: float = FETCH_TIMEOUT) -> PublishedOrFallback:
    """The published model and a real photo, or, where they cannot be downloaded, the shipped
    small model and a held-out scene (``book/08_published_model.ipynb``).

    name:      an official model, one of ``hub.CHECKPOINTS`` (default "detr-r50-panoptic").
    url:       the photo (default the official demo photo, COCO val2017 39769).
    offline:   True: take the fallback without trying a download; None (default): True if the
               environment variable DETR_EXPLAINED_OFFLINE is 1, true or yes.
    scene:     which held-out scene the fallback uses (``synthetic.held_out_scene``).
    cache_dir: where the photo is cached (default :func:`image_cache_dir`); the checkpoint is
               cached by torch.hub in ``<torch hub dir>/checkpoints``.
    timeout:   seconds to wait for a server, per connection and per read.

    The photo is fetched first (small, and quick to fail without internet), then the checkpoint
    (about 170 MB the first time; read from the cache afterwards). The fallback is taken on a
    :class:`DownloadError` only. A checkpoint that is there but damaged, or a download with the
    wrong hash, raises CheckpointError: delete the file it names and run again.
    """
    if not isinstance(name, str) or name not in CHECKPOINTS:
        raise ValueError(f"name must be an official model, one of {sorted(CHECKPOINTS)}, got {name!r}; "
                         f"the fallback ({FALLBACK_MODEL}) is taken by itself where downloads fail")
    why = "offline=True: no download was tried"
    if offline is None:
        offline = os.environ.get(OFFLINE_VARIABLE, "").strip().lower() in ("1", "true", "yes")
        why = f"{OFFLINE_VARIABLE} is set: no download was tried"
    if offline:
        return _fallback(scene, why)
    try:
        photo = fetch_image(url, cache_dir, timeout)
        model = _published_model(name, timeout)
    except DownloadError as err:
        return _fallback(scene, str(err))
    return PublishedOrFallback(model=model, model_name=name, image=prepare_image(photo), source=url,
                               names=coco.category_names(), is_thing=coco.is_thing, truth=None,
                               online=True, reason=ONLINE_REASON.format(name=name))


def _published_model(name: str, timeout: float) -> DETRPanoptic:
    """build_model(name, pretrained=True), with a failed download as DownloadError and a cached
    file that cannot be read as CheckpointError naming it."""
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", CHECKPOINTS[name].filename)
    # torch.hub downloads only a file that is not in its cache: with the file there, whatever
    # goes wrong is reading it (hub reports an OSError of torch.load as "could not download")
    cached_before = os.path.isfile(cached)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torch.hub's download has no timeout of its own
    try:
        return build_model(name, pretrained=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        if cached_before:  # e.g. a file cut short, empty, or no checkpoint at all
            raise _damaged(cached, err) from err
        if isinstance(err, RuntimeError) and isinstance(err.__cause__, (urllib.error.URLError, OSError)):
            raise DownloadError(str(err)) from err  # hub: "could not download ..."
        raise
    finally:
        socket.setdefaulttimeout(previous)


def _damaged(path: str, err: Exception) -> CheckpointError:
    return CheckpointError(f"the cached checkpoint {path} cannot be read ({type(err).__name__}: "
                           f"{str(err)[:200]}); it is damaged: delete it and run again to download it afresh")


def _fallback(scene: int, error: str) -> PublishedOrFallback:
    """The shipped small model and held-out scene ``scene``, with its ground truth."""
    model = build_model(FALLBACK_MODEL, pretrained=True)
    picture = synthetic.held_out_scene(scene)
    return PublishedOrFallback(model=model, model_name=FALLBACK_MODEL, image=picture.tensor(),
                               source=f"held-out scene {scene} (never seen in training)",
                               names=dict(synthetic.CATEGORY_NAMES), is_thing=synthetic.is_thing,
                               truth=(picture.ids, picture.segments_info()), online=False,
                               reason=OFFLINE_REASON, error=error)


# ----------------------------------------------------------------------------------------------
# What the chapter shows
# ----------------------------------------------------------------------------------------------

def path_table(name: str = PUBLISHED_MODEL, fallback: str = FALLBACK_MODEL) -> str:
    """The two paths of :func:`load_published` side by side, read from the two models' configs
    (built on the meta device: sizes only, no weights, no download): backbone, parameters,
    width, queries, classes, Res5 stride, picture (``book/08_published_model.ipynb``)."""
    rows = [("", "online (published site)", "offline (fallback)")]
    models = []
    for model_name in (name, fallback):
        with torch.device("meta"):
            models.append(DETRPanoptic(get_config(model_name)))
    facts = []
    for model_name, model in zip((name, fallback), models):
        config = model.config
        facts.append({
            "model": model_name,
            "weights": "official, COCO panoptic" if model_name in CHECKPOINTS else "shipped, generated scenes",
            "backbone": config.backbone,
            "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
            "width d": str(config.hidden_dim),
            "queries N": str(config.num_queries),
            "classes C (+ no object)": f"{config.num_classes} (+1)",
            "Res5 stride": str(model.detr.backbone.resnet.strides["res5"]),
        })
    facts[0]["picture"] = f"COCO photo, shorter side {SHORTER_SIDE} px"
    facts[1]["picture"] = f"scene, {synthetic.BOOK_SIDE} x {synthetic.BOOK_SIDE} px"
    rows += [(key, facts[0][key], facts[1][key]) for key in facts[0]]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def query_to_show(traced: explore.Traced) -> int:
    """The query the chapter looks at: the most confident kept query of a named thing class
    that has a segment in the merge; else of any thing class with a segment; else the most
    confident kept query; else the most confident query of all (its best class other than
    "no object") (``book/08_published_model.ipynb``)."""
    logits = traced.trace.pred_logits[0]                                        # (N, C+1)
    scores, labels, kept = select_queries(logits, traced.keep_threshold)
    with_segment = {q for s in traced.result.segments_info for q in s["queries"]}
    kept = kept.tolist()
    things = [q for q in kept if traced.is_thing(int(labels[q])) and q in with_segment]
    named = [q for q in things if int(labels[q]) in traced.category_names]
    for candidates in (named, things, kept):
        if candidates:
            return max(candidates, key=lambda q: float(scores[q]))
    real = logits.softmax(-1)[:, :-1].max(-1).values                           # (N,) best real class
    return int(real.argmax())


def heads_view(traced: explore.Traced, query: int) -> explore.View:
    """One query's attention map head by head, over the picture, and its mask logits
    (``book/08_published_model.ipynb``).

    The M heads are red cells over the picture (``figures.show_cells_over_image``, cell lines
    drawn), all on one colour scale, the query's largest weight in any head, with one colour bar:
    a head with a small share of the query's total of 1 is faint; each title gives the head's
    share. Beside them the heads summed (a larger quantity: its own scale and colour bar) and the
    mask logits at H/4 (``figures.LOGIT_CMAP``, red where the mask is on). The orange line
    (``figures.PREDICTION_COLOR``) is the outline of the segment the merge gave the query, if any.
    """
    query = explore._check_query(traced, query)
    maps = traced.trace.attention_maps[0, query]                                # (M, h, w)
    shares = maps.sum(dim=(1, 2))                                               # (M,) sums to 1
    logits = traced.trace.pred_masks[0, query]                                  # (H/4, W/4)
    segment = explore.segment_of_query(traced, query)
    outline = None if segment is None else (traced.result.id_map == segment["id"]).numpy()  # (H, W)
    heads = len(maps)
    rows = 2 if heads > 1 else 1
    columns = -(-heads // rows)
    height, width = traced.image.shape[:2]
    panel = 2.5
    fig = Figure(figsize=(panel * (columns + 1) + 2.0, rows * panel * height / width + 0.9),
                 facecolor=figures.BACKGROUND)
    # the heads on the left, with their one colour bar; the summed map and the logits on the right
    left, right = fig.subfigures(1, 2, width_ratios=[panel * columns + 0.9, panel + 1.1])
    axes = left.subplots(rows, columns, squeeze=False).flatten()
    side = right.subplots(2, 1, squeeze=False).flatten()
    left.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.02, wspace=0.08, hspace=0.25)
    right.subplots_adjust(left=0.04, right=0.70, top=0.84, bottom=0.02, hspace=0.25)
    vmax = float(maps.max())
    for m in range(heads):
        figures.show_cells_over_image(traced.image, maps[m], ax=axes[m], vmax=vmax, outline=outline,
                                      outline_color=figures.PREDICTION_COLOR,
                                      title=f"head {m}: {float(shares[m]):.1%}")
    for ax in axes[heads:]:
        ax.remove()
    figures.attention_colorbar(list(axes[:heads]), vmax, label="attention weight (one scale, all heads)")
    figures.show_cells_over_image(traced.image, maps.sum(0), ax=side[0], outline=outline,
                                  outline_color=figures.PREDICTION_COLOR, colorbar=True,
                                  title="heads summed (own scale)")
    explore._draw_logits(right, side[1], logits, f"mask logits {tuple(logits.shape)} at H/4")
    where = "no segment" if segment is None else f"segment {segment['id']}, {segment['area']} px"
    fig.suptitle(f"{traced.query_label(query)} ({where}): where each of its {heads} heads looks, "
                 f"on one scale (opaque = {vmax:.3f})", fontsize=10)
    top = int(shares.argmax())
    text = (f"query {query}: head {top} holds {float(shares[top]):.1%} of its attention "
            f"(an equal split would give each head {1 / heads:.1%})")
    return explore.View(fig, {"attention": maps.numpy(), "shares": shares.numpy(), "vmax": vmax,
                              "mask_logits": logits.numpy(), "segment": outline}, [], text)


def kept_table(traced: explore.Traced) -> str:
    """The queries the merge keeps (score above the model's keep threshold, 0.85 for the official
    models), most confident first: query, class,
    thing or stuff, score, and the segment it made or joined (``book/08_published_model.ipynb``)."""
    rows = [r for r in explore.query_rows(traced) if r["kept"]]
    rows.sort(key=lambda r: -r["score"])
    _, labels, _ = select_queries(traced.trace.pred_logits[0])
    lines = [f"{'query':>5}  {'class':<22}{'kind':<7}{'score':>6}  segment"]
    for r in rows:
        segment = explore.segment_of_query(traced, r["query"])
        kind = "thing" if traced.is_thing(int(labels[r["query"]])) else "stuff"
        lines.append(f"{r['query']:>5}  {r['class']:<22}{kind:<7}{r['score']:>6.3f}  "
                     + ("none" if segment is None else str(segment["id"])))
    return "\n".join(lines)
