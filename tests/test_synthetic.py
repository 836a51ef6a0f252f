"""The synthetic panoptic world: deterministic, panoptic (textured stuff, overlapping things),
and written in the real COCO panoptic format."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from detr_explained import synthetic
from detr_explained.coco_panoptic import rgb2id

THING_IDS = {c["id"] for c in synthetic.THING_CATEGORIES}
STUFF_IDS = {c["id"] for c in synthetic.STUFF_CATEGORIES}
NUM_SCENES = 12


@pytest.fixture(scope="module")
def scenes():
    return [synthetic.make_scene(seed=0, index=i) for i in range(NUM_SCENES)]


def test_same_seed_same_scene_other_seed_other_scene():
    a, b = synthetic.make_scene(3, 1), synthetic.make_scene(3, 1)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.ids, b.ids)
    assert a.segments == b.segments
    c = synthetic.make_scene(4, 1)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_sizes_vary_within_bounds_and_can_be_fixed(scenes):
    shapes = {s.image.shape for s in scenes}
    assert len(shapes) > 1, "images of one size would never exercise batch padding"
    for s in scenes:
        h, w, c = s.image.shape
        assert c == 3 and s.image.dtype == np.uint8
        assert synthetic.MIN_SIDE <= h <= synthetic.MAX_SIDE and synthetic.MIN_SIDE <= w <= synthetic.MAX_SIDE
        assert s.ids.shape == (h, w)
    assert synthetic.make_scene(0, 0, size=(100, 140)).image.shape == (100, 140, 3)


def test_id_map_and_segments_agree(scenes):
    for s in scenes:
        seg_ids = [seg["id"] for seg in s.segments]
        assert len(set(seg_ids)) == len(seg_ids)
        assert set(np.unique(s.ids).tolist()) == set(seg_ids), "every pixel labelled, every segment present"
        for seg in s.segments:
            if seg["category_id"] in THING_IDS:
                assert (s.ids == seg["id"]).sum() >= synthetic.MIN_VISIBLE_PIXELS


def test_scenes_are_panoptic(scenes):
    """All classes occur; stuff has one segment per class; things repeat, overlap and hide each other."""
    seen = {seg["category_id"] for s in scenes for seg in s.segments}
    assert seen == THING_IDS | STUFF_IDS
    repeated = 0
    occluded = 0
    for s in scenes:
        stuff = [seg["category_id"] for seg in s.segments if seg["category_id"] in STUFF_IDS]
        assert len(stuff) == len(set(stuff)), "stuff has no instances: one segment per class"
        things = [seg["category_id"] for seg in s.segments if seg["category_id"] in THING_IDS]
        repeated += max(things.count(c) for c in THING_IDS) >= 2
        occluded += any((s.ids == seg["id"]).sum() < seg["drawn_area"]
                        for seg in s.segments if "drawn_area" in seg)
    assert repeated >= 0.8 * NUM_SCENES
    assert occluded >= NUM_SCENES // 3


def test_stuff_is_textured_not_flat(scenes):
    for s in scenes[:4]:
        gray = s.image.astype(float).mean(-1)
        for seg in s.segments:
            region = s.ids == seg["id"]
            if seg["category_id"] in STUFF_IDS and region.sum() > 200:
                assert gray[region].std() > 4, f"stuff class {seg['category_id']} looks flat"


def test_written_files_are_coco_panoptic(tmp_path):
    paths = synthetic.write_dataset(tmp_path / "ds", num_images=3, seed=0)
    with open(paths.annotation_file) as f:
        data = json.load(f)
    assert {"images", "annotations", "categories"} <= set(data)
    assert data["categories"] == synthetic.CATEGORIES
    for cat in data["categories"]:
        assert set(cat) == {"id", "name", "isthing", "supercategory"}
    images = {img["id"]: img for img in data["images"]}
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        with Image.open(os.path.join(paths.image_dir, img["file_name"])) as im:
            assert im.format == "JPEG" and im.size == (img["width"], img["height"])
        with Image.open(os.path.join(paths.panoptic_dir, ann["file_name"])) as png:
            assert png.format == "PNG" and png.mode == "RGB"
            ids = rgb2id(np.asarray(png))
        scene = synthetic.make_scene(0, ann["image_id"] - 1)
        assert np.array_equal(ids, scene.ids), "the PNG holds the exact id map"
        for seg in ann["segments_info"]:
            assert set(seg) == {"id", "category_id", "iscrowd", "bbox", "area"}
            mask = ids == seg["id"]
            ys, xs = np.nonzero(mask)
            # area and bbox as COCO defines them, recomputed here without pycocotools
            assert seg["area"] == mask.sum()
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert seg["iscrowd"] == 0


def test_writing_is_deterministic_and_prefix_stable(tmp_path):
    a = synthetic.write_dataset(tmp_path / "a", num_images=2, seed=5)
    b = synthetic.write_dataset(tmp_path / "b", num_images=3, seed=5)
    for name in ("000001.png", "000002.png"):
        assert (tmp_path / "a/panoptic" / name).read_bytes() == (tmp_path / "b/panoptic" / name).read_bytes()
    for name in ("000001.jpg", "000002.jpg"):
        assert (tmp_path / "a/images" / name).read_bytes() == (tmp_path / "b/images" / name).read_bytes()
    ja, jb = (json.load(open(p.annotation_file)) for p in (a, b))
    assert ja["annotations"] == jb["annotations"][:2]


def test_no_overwrite_without_flag(tmp_path):
    paths = synthetic.write_dataset(tmp_path, num_images=3, seed=0)
    before = open(paths.annotation_file).read()
    with pytest.raises(FileExistsError, match="overwrite"):
        synthetic.write_dataset(tmp_path, num_images=1, seed=1)
    assert open(paths.annotation_file).read() == before
    assert len(os.listdir(paths.image_dir)) == 3
    # Only the JSON left behind still blocks a new write.
    os.remove(os.path.join(paths.image_dir, "000001.jpg"))
    synthetic.write_dataset(tmp_path, num_images=1, seed=1, overwrite=True)
    assert sorted(os.listdir(paths.image_dir)) == ["000001.jpg"], "old files are gone"
    assert len(json.load(open(paths.annotation_file))["images"]) == 1


def test_cli(tmp_path, capsys):
    synthetic.main([str(tmp_path), "--num-images", "2", "--seed", "1"])
    assert "wrote 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main([str(tmp_path), "--num-images", "2", "--seed", "1"])
    assert exit_info.value.code == 2
    assert "overwrite" in capsys.readouterr().err
    synthetic.main([str(tmp_path), "--num-images", "1", "--seed", "1", "--overwrite"])
    assert len(os.listdir(tmp_path / "panoptic")) == 1


def test_cli_runs_as_module(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "detr_explained.synthetic", str(tmp_path / "out"), "--num-images", "1"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "panoptic.json").is_file()


def test_scene_masks_follow_its_segments():
    scene = synthetic.held_out_scene(0)
    masks = scene.masks()
    assert masks.shape == (len(scene.segments),) + scene.ids.shape
    assert masks.sum(0).eq(1).all()          # every pixel in exactly one segment
    assert [int(m.sum()) for m in masks] == [s["area"] for s in scene.segments_info()]
