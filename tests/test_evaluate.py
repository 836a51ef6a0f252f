"""The evaluation command (book/07_train_it_yourself.ipynb): segment() + PQ over a dataset."""
import pytest
import torch

import detr_explained as de
from detr_explained import evaluate as evaluate_module
from detr_explained.coco_panoptic import open_dataset
from detr_explained.evaluate import evaluate, main
from detr_explained.merge import PanopticResult
from detr_explained.synthetic import write_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(str(root), num_images=4, seed=3, min_side=64, max_side=80)
    return str(root)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained model saved as the training command saves model.pth."""
    torch.manual_seed(0)
    model = de.build_model("detr-tiny-synthetic")
    path = tmp_path_factory.mktemp("run") / "model.pth"
    torch.save({"model": {k: v.half() if v.is_floating_point() else v
                          for k, v in model.state_dict().items()}}, path)
    return path


def test_command_prints_the_pq_table(data_dir, checkpoint, capsys):
    main(["--data", data_dir, "--checkpoint", str(checkpoint), "--per-class"])
    printed = capsys.readouterr().out
    assert "on 4 images" in printed
    header, rule, *rows = printed.splitlines()[1:]
    assert header.split() == ["|", "PQ", "SQ", "RQ", "N"]
    assert [row.split()[0] for row in rows[:3]] == ["All", "Things", "Stuff"]
    assert "circle" in printed and "water" in printed  # --per-class rows


def test_command_explains_a_missing_checkpoint(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", data_dir, "--checkpoint", str(tmp_path / "nothing.pth")])
    assert exit_info.value.code == 2
    assert "no checkpoint file" in capsys.readouterr().err


def _ground_truth_as_prediction(dataset, category_of=None):
    """A stand-in for segment() that answers each image with its own ground truth."""
    answers = iter(range(len(dataset)))

    def fake_segment(model, images, threshold, is_thing):
        results = []
        for _ in images:
            ids, segments = dataset.read_panoptic(next(answers))
            results.append(PanopticResult(torch.from_numpy(ids), [
                {"id": s["id"], "category_id": (category_of or {}).get(s["category_id"], s["category_id"])}
                for s in segments]))
        return results
    return fake_segment


def test_perfect_predictions_score_pq_one(data_dir, monkeypatch):
    dataset = open_dataset(data_dir)
    monkeypatch.setattr(evaluate_module, "segment", _ground_truth_as_prediction(dataset))
    result = evaluate(de.build_model("detr-tiny-synthetic"), dataset, batch_size=3)
    for group in ("All", "Things", "Stuff"):
        assert result.summary[group]["pq"] == pytest.approx(1.0)


def test_unknown_category_predictions_count_as_no_prediction(data_dir, monkeypatch):
    """Class index 0 exists in the model (ids are 1..6) but not in the dataset: predicted sky
    labelled 0 becomes VOID, so sky is missed (FN), nothing crashes."""
    dataset = open_dataset(data_dir)
    monkeypatch.setattr(evaluate_module, "segment", _ground_truth_as_prediction(dataset, {4: 0}))
    result = evaluate(de.build_model("detr-tiny-synthetic"), dataset)
    sky = result.per_class[4]
    assert (sky["tp"], sky["fp"]) == (0, 0) and sky["fn"] > 0
    assert result.per_class[1]["pq"] == pytest.approx(1.0)
