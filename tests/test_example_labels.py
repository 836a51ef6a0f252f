"""The example export of book/09_your_own_dataset.ipynb: it converts cleanly, its image agrees with
its labels, the recipe record it ships is complete, and its figures name the classes."""
import json

import numpy as np
import pytest
from PIL import Image

from detr_explained import convert, example_labels, figures
from detr_explained.coco_panoptic import open_dataset
from detr_explained.evaluate import is_thing_of


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    paths = example_labels.write_example_labels(str(root / "export"), num_images=6, seed=3)
    summary = convert.convert(paths["images"], paths["instances"], paths["categories"], str(root / "panoptic"),
                              semantic=paths["semantic"])
    return paths, summary, open_dataset(str(root / "panoptic"))


def test_the_export_converts_and_loads(export):
    paths, summary, dataset = export
    with open(paths["instances"]) as handle:
        instances = json.load(handle)
    assert summary["images"] == 6 and summary["things"] == len(instances["annotations"]) - len(summary["dropped"])
    assert summary["stuff"] == 12                       # sky and sand in every image
    for i in range(len(dataset)):
        image, target = dataset[i]
        assert set(target["labels"].tolist()) >= {example_labels.SKY, example_labels.SAND}
    assert dataset.num_classes == 5


def test_the_photo_shows_what_the_labels_say(export):
    """Each thing's pixels in the photo differ from the sky and sand around it: the polygons are
    where the objects were painted, with the smaller one on top, as the converter's rule assumes."""
    paths, _, dataset = export
    for i in range(len(dataset)):
        ids, segments = dataset.read_panoptic(i)
        image = np.asarray(Image.open(f"{paths['images']}/{i + 1:06d}.jpg"), dtype=float)
        for seg in segments:
            if seg["category_id"] in (example_labels.STAR, example_labels.DIAMOND):
                inside = image[ids == seg["id"]]
                spread = inside.std(0).mean()
                assert spread < 40, (i, seg)            # one shaded colour, not a mix with the background


def test_the_semantic_png_leaves_a_void_seam(export):
    paths, _, dataset = export
    semantic = np.asarray(Image.open(f"{paths['semantic']}/000001.png"))
    assert set(np.unique(semantic).tolist()) == {0, example_labels.SKY, example_labels.SAND}
    ids, _ = dataset.read_panoptic(0)
    assert (ids == 0).any()


def test_writing_twice_is_refused(export, tmp_path):
    example_labels.write_example_labels(str(tmp_path), num_images=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        example_labels.write_example_labels(str(tmp_path), num_images=1)


def test_the_recipe_record_has_every_recipe(capsys):
    record = example_labels.fine_tuning_record()
    names = [row["recipe"] for row in record["rows"]]
    assert names == ["scratch", "fine-tune", "two-stage", "two-stage-scratch"]
    for row in record["rows"]:
        assert 0 <= row["pq_things"] <= 1 and row["steps"] > 0 and row["commands"]
    example_labels.print_recipe_table(record)
    table = capsys.readouterr().out
    assert "fine-tuned (--init-from)" in table and "two stages, from scratch" in table


def test_figures_name_the_classes(export):
    paths, _, dataset = export
    with open(paths["instances"]) as handle:
        instances = json.load(handle)
    names = example_labels.category_names()
    fig = figures.show_export(Image.open(f"{paths['images']}/000001.jpg"),
                              example_labels.polygons_of(paths["instances"], 1),
                              np.asarray(Image.open(f"{paths['semantic']}/000001.png")), names)
    labels = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert "0: unlabelled" in labels and "3: sky" in labels and "4: sand" in labels
    assert len(fig.axes[1].patches) == sum(len(a["segmentation"]) for a in instances["annotations"]
                                           if a["image_id"] == 1)
    ids, segments = dataset.ground_truth(0)
    is_thing = is_thing_of(dataset)
    assert [s["isthing"] for s in segments] == [int(is_thing(s["category_id"])) for s in segments]
    fig = figures.show_predictions([dataset[0][0]], [(ids, segments)], [(ids, segments)], names)
    truth_colours = [tuple(p.get_facecolor()) for p in fig.axes[1].get_legend().get_patches()]
    model_colours = [tuple(p.get_facecolor()) for p in fig.axes[2].get_legend().get_patches()]
    assert truth_colours == model_colours           # a perfect prediction: every segment matched
