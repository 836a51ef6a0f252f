"""The Hungarian matcher finds the cheapest one-to-one pairing of queries and segments."""
import itertools

import pytest
import torch

from detr_explained.matcher import COST_BBOX, COST_CLASS, COST_GIOU, HungarianMatcher, match_cost

NUM_CLASSES = 4  # logits have NUM_CLASSES + 1 entries, the last "no object"


def confident_logits(labels, num_queries, num_classes=NUM_CLASSES):
    logits = torch.zeros(num_queries, num_classes + 1)
    logits[:, -1] = 8.0                            # default: no object
    for q, c in labels.items():
        logits[q] = 0.0
        logits[q, c] = 8.0
    return logits


def test_obvious_assignment():
    """Queries 5, 2, 7 sit exactly on segments 0, 1, 2 with the right classes."""
    target = {"labels": torch.tensor([1, 3, 0]),
              "boxes": torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.7, 0.3, 0.3, 0.2], [0.5, 0.8, 0.4, 0.3]])}
    pred_boxes = torch.full((10, 4), 0.5)
    pred_boxes[:, 2:] = 0.05
    pred_boxes[5], pred_boxes[2], pred_boxes[7] = target["boxes"]
    logits = confident_logits({5: 1, 2: 3, 7: 0}, 10)
    outputs = {"pred_logits": logits[None], "pred_boxes": pred_boxes[None]}
    [(query_idx, target_idx)] = HungarianMatcher()(outputs, [target])
    assert query_idx.dtype == torch.int64 and target_idx.dtype == torch.int64
    assert dict(zip(query_idx.tolist(), target_idx.tolist())) == {2: 1, 5: 0, 7: 2}
    assert query_idx.tolist() == sorted(query_idx.tolist())


def test_class_can_overrule_a_slightly_better_box():
    """Two queries on the same box: the one predicting the right class wins."""
    target = {"labels": torch.tensor([2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    pred_boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2]])
    logits = confident_logits({0: 1, 1: 2}, 2)
    [(query_idx, _)] = HungarianMatcher()({"pred_logits": logits[None], "pred_boxes": pred_boxes[None]},
                                          [target])
    assert query_idx.tolist() == [1]


def test_cost_is_the_documented_formula():
    logits = torch.tensor([[0.3, -1.0, 2.0]])                 # one query, C = 2
    pred = torch.tensor([[0.5, 0.5, 0.4, 0.4]])               # xyxy (0.3, 0.3, 0.7, 0.7)
    target = torch.tensor([[0.6, 0.5, 0.4, 0.2]])             # xyxy (0.4, 0.4, 0.8, 0.6)
    cost = match_cost(logits, pred, torch.tensor([0]), target)
    prob = logits.softmax(-1)[0, 0]
    l1 = 0.1 + 0.0 + 0.0 + 0.2
    inter = 0.3 * 0.2                                         # x 0.4..0.7, y 0.4..0.6
    union = 0.16 + 0.08 - inter
    hull = 0.5 * 0.4                                          # x 0.3..0.8, y 0.3..0.7
    giou = inter / union - (hull - union) / hull
    expected = COST_CLASS * -prob + COST_BBOX * l1 + COST_GIOU * -giou
    assert cost.shape == (1, 1)
    assert cost[0, 0].item() == pytest.approx(expected.item(), abs=1e-5)


def test_agrees_with_brute_force():
    torch.manual_seed(0)
    matcher = HungarianMatcher()
    for _ in range(5):
        num_queries, num_targets = 6, 4
        logits = torch.randn(1, num_queries, NUM_CLASSES + 1)
        boxes = torch.cat([torch.rand(1, num_queries, 2) * 0.6 + 0.2,
                           torch.rand(1, num_queries, 2) * 0.3 + 0.05], -1)
        target = {"labels": torch.randint(0, NUM_CLASSES, (num_targets,)),
                  "boxes": torch.cat([torch.rand(num_targets, 2) * 0.6 + 0.2,
                                      torch.rand(num_targets, 2) * 0.3 + 0.05], -1)}
        [(query_idx, target_idx)] = matcher({"pred_logits": logits, "pred_boxes": boxes}, [target])
        cost = match_cost(logits[0], boxes[0], target["labels"], target["boxes"])
        found = cost[query_idx, target_idx].sum().item()
        best = min(sum(cost[q, t].item() for t, q in enumerate(queries))
                   for queries in itertools.permutations(range(num_queries), num_targets))
        assert found == pytest.approx(best, abs=1e-5)
        assert sorted(target_idx.tolist()) == list(range(num_targets)), "every segment matched once"
        assert len(set(query_idx.tolist())) == num_targets, "no query matched twice"


def test_batch_with_an_empty_image_and_too_many_segments():
    logits = torch.randn(2, 3, NUM_CLASSES + 1)
    boxes = torch.full((2, 3, 4), 0.3)
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.3, 0.3, 0.3, 0.3]])},
               {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}]
    indices = HungarianMatcher()({"pred_logits": logits, "pred_boxes": boxes}, targets)
    assert [len(q) for q, _ in indices] == [1, 0]
    crowded = {"labels": torch.zeros(4, dtype=torch.int64), "boxes": torch.full((4, 4), 0.3)}
    with pytest.raises(ValueError, match="num_queries"):
        HungarianMatcher()({"pred_logits": logits[:1], "pred_boxes": boxes[:1]}, [crowded])


def test_labels_outside_the_models_classes_are_a_clear_error():
    """A dataset with more classes than the model: named, not an IndexError inside the cost."""
    import pytest
    outputs = {"pred_logits": torch.zeros(1, 5, 4), "pred_boxes": torch.full((1, 5, 4), 0.5)}
    target = {"labels": torch.tensor([1, 3]), "boxes": torch.full((2, 4), 0.5)}
    with pytest.raises(ValueError, match="num_classes = 3"):
        HungarianMatcher()(outputs, [target])
    target["labels"] = torch.tensor([1, 2])
    assert len(HungarianMatcher()(outputs, [target])[0][0]) == 2
