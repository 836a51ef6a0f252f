"""Building models by name, the official checkpoint layout, and loading files the tests make."""
import argparse
import hashlib

import pytest
import torch

import detr_explained as de
from detr_explained import hub


def test_official_key_counts_and_parameters():
    with torch.device("meta"):  # shapes only: fast, no memory
        counts = {name: len(de.DETRPanoptic(de.get_config(name)).state_dict())
                  for name in ("detr-r50-panoptic", "detr-r50-dc5-panoptic", "detr-r101-panoptic")}
        r50 = de.DETRPanoptic(de.get_config("detr-r50-panoptic"))
    assert counts == {name: entry.num_keys for name, entry in de.CHECKPOINTS.items()}
    assert sum(p.numel() for p in r50.parameters()) == 42_899_288
    keys = r50.state_dict().keys()
    prefixes = {"detr.transformer.": 182, "detr.backbone.0.body.": 265, "bbox_attention.": 4, "mask_head.": 28}
    for prefix, count in prefixes.items():
        assert sum(k.startswith(prefix) for k in keys) == count
    assert "detr.transformer.encoder.layers.0.self_attn.in_proj_weight" in keys


def official_like_file(model, path):
    """A file shaped like the official ones: the state dict under "model", and the training args."""
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    return path


def test_checkpoint_round_trip(tiny, tmp_path):
    path = official_like_file(tiny, tmp_path / "tiny.pth")
    loaded = de.build_model("detr-tiny", checkpoint=path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), tiny.state_dict().values()))
    assert not loaded.training


def test_wrong_config_lists_keys_and_names_the_likely_one(tiny, tmp_path):
    path = official_like_file(tiny, tmp_path / "tiny.pth")
    with pytest.raises(de.CheckpointError) as error:
        de.build_model("detr-r50-panoptic", checkpoint=path)
    message = str(error.value)
    assert "missing key(s)" in message and "mis-shaped key(s)" in message
    assert "build_model('detr-tiny') fits exactly" in message


def test_other_num_classes_is_suggested(tmp_path):
    torch.manual_seed(0)
    model = de.build_model("detr-tiny", num_classes=7)
    path = official_like_file(model, tmp_path / "seven.pth")
    with pytest.raises(de.CheckpointError, match=r"build_model\('detr-tiny', num_classes=7\)"):
        de.build_model("detr-tiny", checkpoint=path)


def test_extra_keys_are_listed(tiny, tmp_path):
    state = dict(tiny.state_dict(), **{"mask_head.extra.weight": torch.zeros(1)})
    with pytest.raises(de.CheckpointError, match="1 unexpected key"):
        de.load_checkpoint(de.build_model("detr-tiny"), state)


def test_box_only_checkpoint_is_recognised(tiny):
    box_only = {k[len("detr."):]: v for k, v in tiny.state_dict().items() if k.startswith("detr.")}
    with pytest.raises(de.CheckpointError, match="box-only DETR checkpoint"):
        de.load_checkpoint(de.build_model("detr-tiny"), box_only)


def test_corrupt_file(tiny, tmp_path):
    path = official_like_file(tiny, tmp_path / "tiny.pth")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(de.CheckpointError, match="not a readable PyTorch checkpoint"):
        de.read_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        de.read_checkpoint(tmp_path / "absent.pth")


def test_official_name_with_wrong_hash(tmp_path):
    path = tmp_path / "detr-r50-panoptic-00ce5173.pth"
    path.write_bytes(b"an incomplete download")
    with pytest.raises(de.CheckpointError, match="corrupt or incomplete"):
        de.read_checkpoint(path)


def fake_official_entry(monkeypatch, tiny, tmp_path, corrupt=False):
    """Serve a checkpoint from a file:// URL through the real torch.hub download code."""
    source = official_like_file(tiny, tmp_path / "source.pth")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    if corrupt:
        digest = "0" * 8
    served = tmp_path / f"detr-tiny-{digest}.pth"
    source.rename(served)
    monkeypatch.setitem(hub.CHECKPOINTS, "detr-tiny", hub.Checkpoint(served.as_uri(), 205))
    return tmp_path / "cache"


def test_pretrained_download_with_hash_check(monkeypatch, tiny, tmp_path):
    cache = fake_official_entry(monkeypatch, tiny, tmp_path)
    state = hub.download_checkpoint("detr-tiny", model_dir=str(cache))
    assert len(state) == 205 and any(cache.iterdir())


def test_download_with_bad_hash(monkeypatch, tiny, tmp_path):
    cache = fake_official_entry(monkeypatch, tiny, tmp_path, corrupt=True)
    with pytest.raises(de.CheckpointError, match="does not match its hash"):
        hub.download_checkpoint("detr-tiny", model_dir=str(cache))


def test_offline_download_says_where_to_get_the_file(monkeypatch, tmp_path):
    entry = de.CHECKPOINTS["detr-r50-panoptic"]
    unreachable = "http://127.0.0.1:9/" + entry.filename  # nothing listens on port 9
    monkeypatch.setitem(hub.CHECKPOINTS, "detr-r50-panoptic", hub.Checkpoint(unreachable, 490))
    with pytest.raises(RuntimeError) as error:
        de.build_model("detr-r50-panoptic", pretrained=True)
    message = str(error.value)
    assert "checkpoint=" in message and entry.filename in message and "could not download" in message


def test_unknown_names():
    with pytest.raises(KeyError, match="choose one of"):
        de.build_model("detr-r18")
    with pytest.raises(TypeError, match="unknown config field"):
        de.build_model("detr-tiny", num_clases=3)
    with pytest.raises(ValueError, match="no official checkpoint"):
        hub.download_checkpoint("detr-tiny")
