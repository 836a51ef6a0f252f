"""The fast path gives the same panoptic result as the full model plus the merge."""
import pytest
import torch

import detr_explained as de
from detr_explained.demo import plant_classes, planted_model, realistic_assignment

from conftest import random_image


def test_planted_classes_are_the_kept_queries():
    image = random_image(96, 128)
    model = planted_model("detr-tiny", [image], seed=3, num_things=5, num_stuff=3)
    planted = realistic_assignment(20, num_things=5, num_stuff=3, seed=3)
    with torch.no_grad():
        scores, labels = model([image])["pred_logits"][0].softmax(-1).max(-1)
    kept = {q: int(labels[q]) for q in range(20) if scores[q] > 0.85 and labels[q] != 250}
    assert kept == planted


@pytest.mark.parametrize("stuff_merge", ["union", "official"])
def test_segment_equals_model_plus_merge(stuff_merge):
    """Same segments, except at pixels where two queries' mask logits tie to within float
    rounding: the split first convolution sums in another order (differences ~1e-6)."""
    images = [random_image(128, 160, seed=1), random_image(96, 200, seed=2)]
    sizes = [(128, 160), (96, 200)]
    model = planted_model("detr-r50-panoptic", images, seed=4)
    fast = de.segment(model, images, stuff_merge=stuff_merge)
    with torch.no_grad():
        outputs = model(images)
    full = de.merge_panoptic(outputs, sizes, stuff_merge=stuff_merge)
    for b, (a, f) in enumerate(zip(fast, full)):
        assert len(a.segments_info) > 5
        assert [s["category_id"] for s in a.segments_info] == [s["category_id"] for s in f.segments_info]
        differ = a.id_map != f.id_map
        assert differ.float().mean() < 1e-3
        if differ.any():  # only at near-ties of the two best kept queries
            kept = sorted(q for s in f.segments_info for q in s["queries"])
            logits = torch.nn.functional.interpolate(outputs["pred_masks"][b:b + 1, kept], size=(128, 200),
                                                     mode="bilinear")[0, :, :sizes[b][0], :sizes[b][1]]
            best_two = logits.topk(2, dim=0).values[:, differ]
            assert (best_two[0] - best_two[1]).max() < 1e-4


def test_too_many_queries_to_plant():
    model = de.build_model("detr-tiny")
    with pytest.raises(ValueError, match="unknowns"):
        plant_classes(model, [random_image(64, 64, seed=i) for i in range(7)], {0: 1})
