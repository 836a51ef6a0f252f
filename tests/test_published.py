"""Loading the published model with an offline fallback (detr_explained.published), offline:
checkpoints and photos are files the tests make, in a temporary torch hub folder."""
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

import detr_explained as de
from detr_explained import coco, explore, hub, published, synthetic


@pytest.fixture
def hub_dir(monkeypatch, tmp_path):
    """A fresh, empty torch hub folder (what torch.hub.set_dir sets), and no offline switch."""
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(folder))
    monkeypatch.delenv(published.OFFLINE_VARIABLE, raising=False)
    return folder


@pytest.fixture
def photo_url(tmp_path):
    """A small JPEG on disk, as a file:// URL (640 x 480 like the COCO photo, scaled down)."""
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)  # (48, 64, 3)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path.as_uri()


@pytest.fixture
def no_network(monkeypatch):
    """Fail any real download of a checkpoint: the tests must read the cached file."""
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint download was tried")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def official_file(hub_folder, name="detr-r50-panoptic", seed=0):
    """A randomly initialised model of the official config, saved as the official checkpoints
    are ({"model": state_dict}) under the official file name in the hub's checkpoint folder."""
    torch.manual_seed(seed)
    model = de.DETRPanoptic(de.get_config(name))
    path = hub_folder / "checkpoints" / hub.CHECKPOINTS[name].filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return model, path


def counting_urlopen(monkeypatch):
    """Wrap urlopen to count its calls; returns the list of URLs opened."""
    opened = []
    real = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        opened.append(url)
        return real(url, *args, **kwargs)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return opened


# ----------------------------------------------------------------------------------------------
# (a) the published model, from a cached checkpoint in the official format
# ----------------------------------------------------------------------------------------------

def test_published_model_from_the_cached_official_file(hub_dir, photo_url, no_network):
    start = time.perf_counter()
    saved, _ = official_file(hub_dir)               # the full R50 file, about 170 MB
    made = time.perf_counter() - start
    result = published.load_published(url=photo_url)
    assert result.online and result.error is None
    assert result.reason == published.ONLINE_REASON.format(name="detr-r50-panoptic")
    assert result.model_name == "detr-r50-panoptic" and not result.model.training
    for key in ("detr.class_embed.weight", "mask_head.out_lay.weight", "detr.query_embed.weight"):
        assert torch.equal(result.model.state_dict()[key], saved.state_dict()[key])
    assert result.names == coco.category_names() and result.names[17] == "cat"
    assert result.is_thing(17) and not result.is_thing(184)
    assert result.truth is None
    assert tuple(result.image.shape) == (3, 800, 1066)  # 64 x 48 -> shorter side 800, like 640 x 480
    assert result.source == photo_url
    assert (hub_dir / published.IMAGE_CACHE_FOLDER).is_dir()     # the photo is cached under the hub
    assert "detr-r50-panoptic" in result.describe() and "800 x 1066" in result.describe()
    assert made < 15, f"making the R50 file took {made:.1f} s"


def test_a_damaged_cached_checkpoint_is_an_error_not_a_fallback(hub_dir, photo_url, no_network):
    path = hub_dir / "checkpoints" / hub.CHECKPOINTS["detr-r50-panoptic"].filename
    path.parent.mkdir(parents=True)
    for damaged in (b"not a checkpoint" * 4, b""):
        path.write_bytes(damaged)
        with pytest.raises(de.CheckpointError, match="delete it"):
            published.load_published(url=photo_url)


def test_a_cut_short_cached_checkpoint_is_an_error(hub_dir, photo_url, no_network, tiny):
    path = hub_dir / "checkpoints" / hub.CHECKPOINTS["detr-r50-panoptic"].filename
    path.parent.mkdir(parents=True)
    torch.save({"model": tiny.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(de.CheckpointError, match=str(path.name)):
        published.load_published(url=photo_url)


# ----------------------------------------------------------------------------------------------
# (b) the offline fallback
# ----------------------------------------------------------------------------------------------

def check_fallback(result):
    assert not result.online
    assert result.model_name == published.FALLBACK_MODEL
    assert result.model.config == de.get_config("detr-tiny-synthetic") and not result.model.training
    assert result.reason == published.OFFLINE_REASON
    assert result.reason.endswith(".") and result.reason.count(". ") == 0   # one sentence
    assert result.names == synthetic.CATEGORY_NAMES
    assert result.is_thing(synthetic.CIRCLE) and not result.is_thing(synthetic.SKY)
    ids, segments = result.truth
    assert tuple(ids.shape) == tuple(result.image.shape[-2:]) and segments


def test_fallback_when_the_photo_cannot_be_downloaded(hub_dir, monkeypatch):
    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    result = published.load_published()
    check_fallback(result)
    assert published.COCO_PHOTO_URL in result.error and "put the file at" in result.error
    assert not (hub_dir / "checkpoints").exists()   # the photo failed first: no checkpoint was tried


def test_fallback_when_the_checkpoint_cannot_be_downloaded(hub_dir, photo_url, monkeypatch):
    entry = hub.CHECKPOINTS["detr-r50-panoptic"]
    unreachable = "http://127.0.0.1:9/" + entry.filename  # nothing listens on port 9
    monkeypatch.setitem(hub.CHECKPOINTS, "detr-r50-panoptic", hub.Checkpoint(unreachable, 490))
    result = published.load_published(url=photo_url)
    check_fallback(result)
    assert "could not download" in result.error


def test_offline_switch_tries_no_download(hub_dir, monkeypatch):
    opened = counting_urlopen(monkeypatch)
    monkeypatch.setenv(published.OFFLINE_VARIABLE, "1")
    result = published.load_published()
    check_fallback(result)
    assert opened == [] and published.OFFLINE_VARIABLE in result.error
    result = published.load_published(offline=True)
    check_fallback(result)
    assert "offline=True" in result.error


def test_the_fallback_traces_and_draws(hub_dir):
    result = published.load_published(offline=True)
    traced = result.trace()
    assert isinstance(traced, explore.Traced) and traced.truth is not None
    query = published.query_to_show(traced)
    assert any(query in s["queries"] and s["isthing"] for s in traced.result.segments_info)
    view = published.heads_view(traced, query)
    heads = result.model.config.nheads
    assert view.data["attention"].shape[0] == heads
    assert np.isclose(view.data["shares"].sum(), 1.0, atol=1e-5)
    assert len(view.figure.axes) >= heads + 2 and view.png()[:4] == b"\x89PNG"
    table = published.kept_table(traced)
    kept = [r for r in explore.query_rows(traced) if r["kept"]]
    assert len(table.splitlines()) == len(kept) + 1
    with pytest.raises(ValueError, match="query"):
        published.heads_view(traced, traced.num_queries)


def test_heads_view_puts_the_heads_on_one_scale_with_one_colour_bar(hub_dir):
    """Figure conventions 1 and 4: the heads share one scale and one colour bar; the summed map
    has its own; attention is red over the picture, the segment's outline orange."""
    from matplotlib.colors import to_rgb
    from detr_explained import figures
    traced = published.load_published(offline=True).trace()
    query = published.query_to_show(traced)
    view = published.heads_view(traced, query)
    heads = view.data["attention"].shape[0]
    bars = [ax._colorbar for ax in view.figure.axes if hasattr(ax, "_colorbar")]
    attention_bars = [bar for bar in bars if bar.cmap.name == "attention"]
    assert len(attention_bars) == 2                          # the heads' one, the summed map's
    assert attention_bars[0].norm.vmax == pytest.approx(view.data["vmax"]) == pytest.approx(
        float(view.data["attention"].max()))
    assert attention_bars[1].norm.vmax == pytest.approx(float(view.data["attention"].sum(0).max()))
    assert [bar.cmap.name for bar in bars if bar not in attention_bars] == [figures.LOGIT_CMAP]
    head_axes = [ax for ax in view.figure.axes if ax.get_title().startswith("head ")]
    assert len(head_axes) == heads
    for ax in head_axes:                                      # red cells over the grey picture
        cells = ax.images[1].get_array()                      # (h, w, 4) RGBA
        assert np.allclose(cells[..., :3], to_rgb(figures.ATTENTION_COLOR))
        outline = [c for c in ax.collections if hasattr(c, "get_edgecolor")]
        assert outline and all(np.allclose(c.get_edgecolor()[0][:3], to_rgb(figures.PREDICTION_COLOR)) for c in outline)


def test_path_table_names_both_paths():
    table = published.path_table()
    assert "detr-r50-panoptic" in table and "detr-tiny-synthetic" in table
    assert "42,899,288" in table        # the R50 panoptic model's parameters (tests/test_hub.py)


def test_only_official_models_load():
    with pytest.raises(ValueError, match="official model"):
        published.load_published("detr-tiny-synthetic")


# ----------------------------------------------------------------------------------------------
# (c) the photo cache
# ----------------------------------------------------------------------------------------------

def test_second_fetch_reads_the_cache(tmp_path, photo_url, monkeypatch):
    opened = counting_urlopen(monkeypatch)
    cache = tmp_path / "photos"
    first = published.fetch_image(photo_url, cache_dir=cache)
    assert opened == [photo_url] and first.size == (64, 48) and first.mode == "RGB"
    second = published.fetch_image(photo_url, cache_dir=cache)
    assert opened == [photo_url]                     # not opened again
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert [p.name for p in cache.iterdir()] == [published.cached_image_path(photo_url, cache).rsplit("/", 1)[-1]]


def test_default_cache_is_under_the_hub_folder(hub_dir, photo_url):
    published.fetch_image(photo_url)
    path = published.cached_image_path(photo_url)
    assert path.startswith(str(hub_dir / published.IMAGE_CACHE_FOLDER)) and path.endswith("-photo.jpg")


def test_a_download_that_is_not_an_image_leaves_nothing(tmp_path):
    page = tmp_path / "login.html"
    page.write_text("<html>sign in to use this network</html>")
    cache = tmp_path / "photos"
    with pytest.raises(published.DownloadError, match="not an image"):
        published.fetch_image(page.as_uri(), cache_dir=cache)
    assert list(cache.iterdir()) == []               # no half file, no temporary file


def test_an_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    class CutOff:
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def read(self):
            raise TimeoutError("timed out")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: CutOff())
    cache = tmp_path / "photos"
    with pytest.raises(published.DownloadError, match="TimeoutError") as error:
        published.fetch_image("http://example.invalid/photo.jpg", cache_dir=cache, timeout=1)
    assert "put the file at" in str(error.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_an_unreadable_cached_photo_is_named(tmp_path, photo_url):
    cache = tmp_path / "photos"
    path = published.cached_image_path(photo_url, cache)
    cache.mkdir()
    open(path, "wb").write(b"garbage")
    with pytest.raises(ValueError, match="delete it"):
        published.fetch_image(photo_url, cache_dir=cache)


def test_fetch_image_arguments(tmp_path):
    with pytest.raises(TypeError, match="url"):
        published.fetch_image(None)
    with pytest.raises(ValueError, match="http://"):
        published.fetch_image("ftp://example.org/x.jpg", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        published.fetch_image("http://example.org/x.jpg", cache_dir=tmp_path, timeout=0)


def test_the_published_path_traces_and_draws(hub_dir, photo_url, no_network):
    """Chapter 8's online path end to end, on a stand-in for the official weights: a seeded R50
    whose class head keeps about 20 queries with COCO classes on the photo (demo.planted_model),
    saved in the official format. The chapter's cells run on it as on the real model."""
    from detr_explained.demo import planted_model
    photo = published.fetch_image(photo_url)
    image = de.prepare_image(photo)                                         # (3, 800, 1066)
    model = planted_model("detr-r50-panoptic", images=[image])
    path = hub_dir / "checkpoints" / hub.CHECKPOINTS["detr-r50-panoptic"].filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    del model
    result = published.load_published(url=photo_url)
    assert result.online
    traced = result.trace()
    kept = [row for row in explore.query_rows(traced) if row["kept"]]
    assert len(kept) >= 10
    query = published.query_to_show(traced)
    view = published.heads_view(traced, query)
    assert view.data["attention"].shape[0] == 8 and np.isclose(view.data["shares"].sum(), 1.0, atol=1e-4)
    merged = explore.merge_view(traced)
    named = [traced.name(s["category_id"]) for s in traced.result.segments_info]
    in_table = [s["category_id"] for s in traced.result.segments_info if s["category_id"] in coco.category_names()]
    assert in_table and all(coco.category_names()[c] in named for c in in_table)
    assert merged.png()[:4] == b"\x89PNG" and "PQ" not in merged.text      # no ground truth online
    assert len(published.kept_table(traced).splitlines()) == len(kept) + 1
