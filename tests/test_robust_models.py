"""Checkpoints and the model/merge API on bad input: refused with a message that says what was
wrong and what to pass, never loaded or merged silently wrong; and the merge's official
boundaries (the 0.85 threshold, the 4-pixel rule, "no object") pinned by cases that sit on them."""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detr_explained as de
from detr_explained import hub, pq, synthetic
from detr_explained.merge import (KEEP_THRESHOLD, MAX_REMOVED_AREA, check_merge_options, merge_panoptic,
                                  select_queries)

from conftest import random_image

SHIPPED = "detr-tiny-synthetic"


def save(tmp_path, obj, name="model.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def small():
    """detr-tiny-synthetic with random weights (fast to build, has trainable batch norm)."""
    torch.manual_seed(0)
    return de.build_model(SHIPPED)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_name(small, tmp_path, bad):
    state = {k: v.clone() for k, v in small.state_dict().items()}
    state["detr.class_embed.bias"][0] = bad
    state["mask_head.lay1.weight"][0, 0, 0, 0] = bad
    path = save(tmp_path, {"model": state})
    with pytest.raises(de.CheckpointError) as error:
        de.build_model(SHIPPED, checkpoint=path)
    message = str(error.value)
    assert "NaN or infinite" in message and "2 tensor(s)" in message
    assert "detr.class_embed.bias" in message and "mask_head.lay1.weight" in message
    with pytest.raises(de.CheckpointError, match="detr.class_embed.bias"):
        hub.check_finite(state, "mine")


def test_ddp_prefix_is_removed_and_loads(small, tmp_path):
    state = {"module." + k: v for k, v in small.state_dict().items()}
    loaded = de.build_model(SHIPPED, checkpoint=save(tmp_path, {"model": state}))
    for key, value in small.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert hub.strip_ddp_prefix({"a.b": 1}) == {"a.b": 1}


def test_partial_ddp_prefix_is_named(small):
    state = dict(small.state_dict())
    state["module.detr.query_embed.weight"] = state.pop("detr.query_embed.weight")
    with pytest.raises(de.CheckpointError, match="start with 'module.'.*DistributedDataParallel"):
        de.load_checkpoint(de.build_model(SHIPPED), state)


@pytest.mark.parametrize("wrapped", [False, True], ids=["model", "dict-with-model"])
def test_pickled_module_gets_the_right_advice(small, tmp_path, wrapped):
    path = save(tmp_path, {"model": small} if wrapped else small)
    with pytest.raises(de.CheckpointError) as error:
        de.build_model(SHIPPED, checkpoint=path)
    message = str(error.value)
    assert "whole pickled model object (detr_explained.detr.DETRPanoptic)" in message
    assert "model.state_dict()" in message and "weights_only=False" in message
    assert "download" not in message


@pytest.mark.parametrize("content,expected", [
    ([1, 2], "holds a list, not a state dict"),
    ({}, "holds an empty dict"),
    ({"model": {"a": torch.zeros(1), "b": 3}}, r"1 of its 2 entries are not tensors \('b' \(int\)\)"),
])
def test_files_that_are_not_state_dicts(tmp_path, content, expected):
    with pytest.raises(de.CheckpointError, match=expected):
        de.read_checkpoint(save(tmp_path, content))


def test_empty_file_folder_and_wrong_types(small, tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(de.CheckpointError, match=r"empty \(0 bytes\)"):
        de.read_checkpoint(empty)
    with pytest.raises(IsADirectoryError, match=r"is a folder.*\['empty.pth'\]"):
        de.read_checkpoint(tmp_path)
    with pytest.raises(TypeError, match="checkpoint path must be a str"):
        de.read_checkpoint(None)
    with pytest.raises(TypeError, match="checkpoint must be a file path or a state dict"):
        de.load_checkpoint(de.build_model(SHIPPED), 5)
    with pytest.raises(TypeError, match="loads into a DETRPanoptic"):
        de.load_checkpoint(None, small.state_dict())
    with pytest.raises(de.CheckpointError, match=r"whole model object.*\.state_dict\(\)"):
        de.load_checkpoint(de.build_model(SHIPPED), small)


def test_mixed_precision_state_dict_loads(small):
    state = {k: (v.half() if i % 2 and v.is_floating_point() else v)
             for i, (k, v) in enumerate(small.state_dict().items())}
    loaded = de.load_checkpoint(de.build_model(SHIPPED), state)
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value.to(loaded.state_dict()[key].dtype)), key


def test_shipped_record_has_the_files_hash():
    record = hub.training_record(SHIPPED)
    assert record["sha256"] == hub.file_sha256(hub.shipped_checkpoint(SHIPPED))
    assert len(record["sha256"]) == 64


def test_damaged_shipped_weights_are_refused(monkeypatch, tmp_path):
    for name in os.listdir(hub.WEIGHTS_DIR):
        shutil.copy(os.path.join(hub.WEIGHTS_DIR, name), tmp_path)
    monkeypatch.setattr(hub, "WEIGHTS_DIR", str(tmp_path))
    weights = tmp_path / f"{SHIPPED}.pth"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit, which torch.load may well not notice
    weights.write_bytes(bytes(data))
    with pytest.raises(de.CheckpointError) as error:
        de.build_model(SHIPPED, pretrained=True)
    message = str(error.value)
    assert "SHA-256" in message and "git checkout -- detr_explained/weights" in message and "reinstall" in message
    record = tmp_path / f"{SHIPPED}.json"
    record.write_text(json.dumps({"name": SHIPPED}))
    with pytest.raises(de.CheckpointError, match="records no 'sha256'"):
        hub.shipped_checkpoint(SHIPPED)


@pytest.mark.parametrize("call,error,match", [
    (lambda: de.build_model(5), TypeError, "must be a model name"),
    (lambda: de.build_model(["detr-tiny"]), TypeError, "must be a model name"),
    (lambda: de.build_model("detr-tiny", "weights.pth"), TypeError, "pretrained must be True or False.*checkpoint="),
    (lambda: de.build_model(SHIPPED, pretrained=True, checkpoint="x.pth"), ValueError, "not both"),
    (lambda: de.build_model("detr-tiny", num_classes="7"), TypeError, "num_classes='7': give a whole number"),
    (lambda: de.build_model("detr-tiny", num_classes=7.5), TypeError, "num_classes=7.5"),
    (lambda: de.build_model("detr-tiny", num_classes=0), ValueError, "at least 1"),
    (lambda: de.build_model("detr-tiny", num_queries=-1), ValueError, "num_queries=-1"),
    (lambda: de.build_model("detr-tiny", dilation="yes"), TypeError, "give True or False"),
    (lambda: de.build_model("detr-tiny", dropout=2.0), ValueError, "dropout=2.0"),
    (lambda: de.build_model("detr-tiny", pos_temperature=0.0), ValueError, "temperature must be above 0"),
    (lambda: de.build_model("detr-tiny", hidden_dim=100), ValueError, "not divisible by nheads"),
    (lambda: de.build_model("detr-tiny", backbone=50), TypeError, "backbone=50"),
], ids=["int-name", "list-name", "pretrained-path", "both", "str-int", "float-int", "zero-classes",
        "negative-queries", "str-bool", "dropout", "temperature", "heads", "backbone"])
def test_build_model_checks_its_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------------------------
# Half precision, model and inference arguments
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return de.build_model(SHIPPED, pretrained=True)


def test_half_precision_model(shipped):
    """A float16 model refuses float32 images with the conversion to make, and then runs
    (trace is model(...) with a recorder; the positional code follows the model's dtype)."""
    half = de.build_model(SHIPPED, pretrained=True).half()
    image = synthetic.held_out_scene(0).tensor()
    for run in (lambda x: half([x]), lambda x: de.segment(half, [x]), lambda x: de.trace(half, [x])):
        with pytest.raises(TypeError, match=r"float32 but the model's weights are torch.float16.*image.to"):
            run(image)
    assert de.trace(half, [image.half()]).pred_masks.dtype == torch.float16
    fast, full = de.segment(half, [image.half()])[0], de.segment(shipped, [image])[0]
    assert [s["category_id"] for s in fast.segments_info] == [s["category_id"] for s in full.segments_info]
    assert (fast.id_map == full.id_map).float().mean() > 0.99


def test_inference_arguments(shipped, small):
    image = random_image(64, 64)
    with pytest.raises(TypeError, match="segment needs a DETRPanoptic"):
        de.segment(shipped.detr, [image])
    with pytest.raises(TypeError, match="trace needs a DETRPanoptic"):
        de.trace(shipped.detr, [image])
    with pytest.raises(ValueError, match="no images given"):
        de.segment(shipped, [])
    with pytest.raises(ValueError, match="no images given"):
        de.trace(shipped, [])
    with pytest.raises(ValueError, match="got 1 target_sizes for a batch of 2 images"):
        de.segment(shipped, [image, image], target_sizes=[(64, 64)])
    with pytest.raises(ValueError, match="threshold=1.5"):
        de.segment(shipped, [image], threshold=1.5)
    with pytest.raises(TypeError, match="images must be a list"):
        shipped.detr.batch(x for x in [image])
    small.train()
    try:
        with pytest.raises(ValueError, match=r"training mode.*model.eval\(\)"):
            de.segment(small, [image])
    finally:
        small.eval()


# ----------------------------------------------------------------------------------------------
# The merge's boundaries, through merge_panoptic and through segment
# ----------------------------------------------------------------------------------------------

SIDE = 64                     # image and mask side: masks at full size, so areas are exact
NUM_QUERIES = de.get_config("detr-tiny-synthetic").num_queries   # its N
NO_OBJECT = 7                 # classes 0..6, then "no object"
# classes 1-3 things, 4-6 stuff, as in the synthetic scenes; 0 is unused
IS_THING = [True, True, True, True, False, False, False]
FAR = -100.0                  # a logit whose softmax share is 0 in float32
CONFIDENT = 10.0              # a logit that wins with probability ~0.9999


def planted_logits(classes: dict) -> torch.Tensor:
    """(1, N, C+1) logits: query q -> class classes[q] with score ~0.9999; the others "no object"."""
    logits = torch.full((1, NUM_QUERIES, NO_OBJECT + 1), FAR)
    logits[0, :, NO_OBJECT] = 0.0
    for q, c in classes.items():
        logits[0, q, c] = CONFIDENT
    return logits


def logit_for_score(target: torch.Tensor, label: int, query: int = 0) -> torch.Tensor:
    """The logit of ``label`` (against 0 for "no object") whose softmax score is exactly
    ``target``, found by nudging a float32 logit one ulp at a time."""
    logit = torch.tensor(math.log(float(target) / (1 - float(target))))
    for _ in range(64):
        logit = torch.nextafter(logit, torch.tensor(-math.inf))
    for _ in range(256):
        logits = planted_logits({})
        logits[0, query, label] = logit
        if logits[0].softmax(-1)[query].max() == target:
            return logit
        logit = torch.nextafter(logit, torch.tensor(math.inf))
    raise AssertionError(f"no float32 logit gives the softmax score {float(target)!r}")


def run_merge(path, logits, masks, monkeypatch, **options):
    """The planted outputs through merge_panoptic, or through segment with a real model whose
    class logits and mask head are replaced by the planted ones."""
    if path == "merge_panoptic":
        return merge_panoptic({"pred_logits": logits, "pred_masks": masks}, [(SIDE, SIDE)], **options)[0]
    torch.manual_seed(0)
    model = de.build_model(SHIPPED, keep_threshold=KEEP_THRESHOLD)   # segment's default: the model's
    threshold = options.get("threshold", model.config.keep_threshold)
    real = model.detr.encode_decode

    def encode_decode(batch, recorder=None):
        state = real(batch, recorder)
        state["logits"] = logits.expand(state["logits"].shape[0], *logits.shape).clone()  # (L, 1, N, C+1)
        return state

    def forward_selected(src_proj, maps, fpns, image_index):
        kept = select_queries(logits[0], threshold)[2]                   # (K,)
        assert len(kept) == len(maps) and image_index.eq(0).all()
        return masks[0, kept][:, None]                                   # (K, 1, SIDE, SIDE)

    monkeypatch.setattr(model.detr, "encode_decode", encode_decode)
    monkeypatch.setattr(model.mask_head, "forward_selected", forward_selected)
    return de.segment(model, [random_image(SIDE, SIDE)], **options)[0]


def summary(result):
    return [(s["category_id"], s["area"], s["queries"]) for s in result.segments_info]


PATHS = ["merge_panoptic", "segment"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stuff_merge", ["union", "official"])
@pytest.mark.parametrize("area", [MAX_REMOVED_AREA, MAX_REMOVED_AREA + 1])
def test_a_segment_of_4_pixels_is_removed_and_of_5_kept(path, stuff_merge, area, monkeypatch):
    """Query 1 (a thing) wins exactly ``area`` pixels over query 0 (stuff, everywhere else)."""
    assert MAX_REMOVED_AREA == 4
    logits = planted_logits({0: 4, 1: 1})
    masks = torch.zeros(1, NUM_QUERIES, SIDE, SIDE)
    masks[0, 0] = 5.0
    masks[0, 1, 0, :area] = 10.0
    result = run_merge(path, logits, masks, monkeypatch, is_thing=IS_THING, stuff_merge=stuff_merge)
    if area <= 4:
        assert summary(result) == [(4, SIDE * SIDE, [0])]
    else:
        assert summary(result) == [(4, SIDE * SIDE - area, [0]), (1, area, [1])]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("area", [MAX_REMOVED_AREA, MAX_REMOVED_AREA + 1])
def test_union_looks_at_the_whole_stuff_segment(path, area, monkeypatch):
    """Two queries of one stuff class with 2 and area-2 pixels: one segment of ``area`` pixels."""
    logits = planted_logits({0: 1, 1: 5, 2: 5})
    masks = torch.zeros(1, NUM_QUERIES, SIDE, SIDE)
    masks[0, 0] = 5.0
    masks[0, 1, 0, :2] = 10.0
    masks[0, 2, 0, 2:area] = 10.0
    result = run_merge(path, logits, masks, monkeypatch, is_thing=IS_THING, stuff_merge="union")
    if area <= 4:
        assert summary(result) == [(1, SIDE * SIDE, [0])]
    else:
        assert summary(result) == [(1, SIDE * SIDE - area, [0]), (5, area, [1, 2])]


@pytest.mark.parametrize("path", PATHS)
def test_union_still_merges_after_a_removal(path, monkeypatch):
    """A removed 3-pixel thing forces a second argmax round; the two queries of one stuff class
    must still form one segment in it."""
    logits = planted_logits({0: 5, 1: 5, 2: 1})
    masks = torch.zeros(1, NUM_QUERIES, SIDE, SIDE)
    masks[0, 0, :, : SIDE // 2] = 5.0
    masks[0, 1, :, SIDE // 2:] = 5.0
    masks[0, 2, 0, :3] = 10.0
    result = run_merge(path, logits, masks, monkeypatch, is_thing=IS_THING, stuff_merge="union")
    assert summary(result) == [(5, SIDE * SIDE, [0, 1])]


def threshold_case():
    """Query 0 scores exactly float32(0.85), query 1 the next score softmax can give above it;
    query 3 is confidently "no object". Queries 0 and 3 would take every pixel if kept."""
    exact = torch.tensor(KEEP_THRESHOLD)                                 # float32(0.85)
    logits = planted_logits({2: 6})                                      # query 2: the last real class
    logits[0, 0, 2] = logit_for_score(exact, label=2)
    logits[0, 1, 3] = logits[0, 0, 2]
    while logits[0].softmax(-1)[1].max() <= exact:                      # nudge up to the next score
        logits[0, 1, 3] = torch.nextafter(logits[0, 1, 3], torch.tensor(math.inf))
    logits[0, 3, NO_OBJECT] = CONFIDENT
    scores, _ = logits[0].softmax(-1).max(-1)
    assert scores[0] == exact                                            # exactly on the boundary
    # the smallest score above it: a softmax's top score is 1 / sum, and near 1/0.85 the float32
    # sums are 2^-23 apart, so float32(0.85) + 1 ulp cannot come out of a softmax; + 2 ulps can
    above = torch.nextafter(torch.nextafter(exact, torch.tensor(1.0)), torch.tensor(1.0))
    assert scores[1] == above
    masks = torch.zeros(1, NUM_QUERIES, SIDE, SIDE)
    masks[0, 0] = masks[0, 3] = 100.0
    masks[0, 1, :, : SIDE // 2] = 10.0
    masks[0, 2, :, SIDE // 2:] = 10.0
    return logits, masks


@pytest.mark.parametrize("path", PATHS)
def test_a_score_of_exactly_085_is_not_kept_and_just_above_is(path, monkeypatch):
    assert KEEP_THRESHOLD == 0.85
    logits, masks = threshold_case()
    result = run_merge(path, logits, masks, monkeypatch, is_thing=IS_THING)  # the default threshold
    half = SIDE * SIDE // 2
    assert summary(result) == [(3, half, [1]), (6, half, [2])]
    assert result.segments_info[0]["score"] > KEEP_THRESHOLD


def test_threshold_comparison_is_strict_to_the_ulp():
    logits, _ = threshold_case()
    exact = torch.tensor(KEEP_THRESHOLD)
    just_below = float(torch.nextafter(exact, torch.tensor(0.0)))
    assert select_queries(logits[0])[2].tolist() == [1, 2]
    assert select_queries(logits[0], just_below)[2].tolist() == [0, 1, 2]
    assert select_queries(logits[0], float(exact))[2].tolist() == [1, 2]


def test_no_object_is_never_kept_and_the_last_class_is():
    logits = planted_logits({0: 0, 1: NO_OBJECT - 1})
    logits[0, 2, NO_OBJECT] = CONFIDENT
    scores, labels, kept = select_queries(logits[0], threshold=0.0)
    assert labels[2] == NO_OBJECT and scores[2] > 0.99
    assert kept.tolist() == [0, 1]


# ----------------------------------------------------------------------------------------------
# Property-based: any outputs and options give valid results or a clear ValueError/TypeError
# ----------------------------------------------------------------------------------------------

# mostly valid thresholds, so that most examples reach the merge; the edges and the wrong ones too
THRESHOLDS = st.one_of(
    *[st.floats(0, 0.99)] * 6,
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.5, 0.0, 0.85, 1.0, 1.5]))
ARGUMENT_NAMES = ("threshold", "is_thing", "sizes", "target_sizes", "stuff_merge", "pred_logits",
                  "pred_masks", "mask logits", "outputs")


def is_thing_forms(num_classes):
    """Every accepted form, complete or missing some classes."""
    ids = st.lists(st.integers(0, num_classes - 1), unique=True)
    return st.one_of(
        st.none(),
        st.just(lambda c: c % 2 == 0),
        ids.map(lambda keep: {c: c % 3 == 0 for c in keep}),
        st.integers(0, num_classes).map(lambda n: [c % 2 == 1 for c in range(n)]),
        st.integers(0, num_classes).map(lambda n: tuple(c < 2 for c in range(n))),
    )


@st.composite
def merge_inputs(draw):
    batch = draw(st.integers(1, 2))
    queries = draw(st.integers(1, 6))
    num_classes = draw(st.integers(1, 4))
    mask_h, mask_w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    sharpness = draw(st.sampled_from([1.0, 5.0, 20.0]))                 # how many queries pass 0.85
    logits = torch.randn(batch, queries, num_classes + 1, generator=generator) * sharpness
    masks = torch.randn(batch, queries, mask_h, mask_w, generator=generator)
    if draw(st.booleans()):
        masks = masks.round()                                            # ties in the argmax
    broken = draw(st.sampled_from([None] * 8 + ["nan-mask", "inf-logit"]))
    if broken == "nan-mask":
        masks[0, 0, 0, 0] = float("nan")
    elif broken == "inf-logit":
        logits[-1, -1, 0] = float("inf")
    side = st.integers(1, 16)
    sizes = [(draw(side), draw(side)) for _ in range(batch)]
    target_count = draw(st.sampled_from([None] * 4 + [batch] * 4 + [batch - 1, batch + 1]))
    target_sizes = None if target_count is None else [(draw(side), draw(side)) for _ in range(target_count)]
    return dict(outputs={"pred_logits": logits, "pred_masks": masks}, sizes=sizes, target_sizes=target_sizes,
                threshold=draw(THRESHOLDS), is_thing=draw(is_thing_forms(num_classes)),
                stuff_merge=draw(st.sampled_from(["union"] * 4 + ["official"] * 4 + ["both"])),
                num_classes=num_classes, broken=broken)


def thing_of(is_thing):
    if is_thing is None:
        return de.merge.coco_is_thing
    return is_thing if callable(is_thing) else (lambda c: bool(is_thing[c]))


def check_invariants(result, logits, target_size, threshold, is_thing, num_classes):
    id_map = result.id_map
    assert tuple(id_map.shape) == tuple(target_size) and id_map.dtype == torch.long
    ids = [s["id"] for s in result.segments_info]
    assert ids == list(range(1, len(ids) + 1))
    assert set(id_map.unique().tolist()) - {0} == set(ids)
    scores, labels = logits.softmax(-1).max(-1)                           # (N,), (N,)
    used = []
    for s in result.segments_info:
        mask = id_map == s["id"]
        assert s["area"] == int(mask.sum()) > MAX_REMOVED_AREA
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert s["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                             int(ys.max() - ys.min() + 1)]
        assert 0 <= s["category_id"] < num_classes and s["isthing"] == thing_of(is_thing)(s["category_id"])
        assert s["score"] > threshold
        for q in s["queries"]:
            assert scores[q] > threshold and labels[q] == s["category_id"] != num_classes
        used += s["queries"]
    assert len(used) == len(set(used))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(merge_inputs())
def test_merge_panoptic_is_valid_or_refuses_clearly(case):
    threshold, sizes, target_sizes = case["threshold"], case["sizes"], case["target_sizes"]
    must_fail = (not 0 <= threshold < 1 or case["stuff_merge"] not in ("union", "official")
                 or case["broken"] == "inf-logit"
                 or (target_sizes is not None and len(target_sizes) != len(sizes)))
    try:
        results = merge_panoptic(case["outputs"], sizes, target_sizes, threshold, case["is_thing"],
                                 case["stuff_merge"])
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in ARGUMENT_NAMES), err
        # the data-dependent refusals: a NaN mask of a kept query, a class is_thing lacks
        assert must_fail or case["broken"] == "nan-mask" or "is_thing" in str(err), err
        return
    assert not must_fail
    logits = case["outputs"]["pred_logits"]
    for b, result in enumerate(results):
        target = sizes[b] if target_sizes is None else target_sizes[b]
        check_invariants(result, logits[b], target, threshold, case["is_thing"], case["num_classes"])


@pytest.fixture(scope="module")
def random_small():
    """A random detr-tiny-synthetic and the class logits it gives on two images."""
    torch.manual_seed(1)
    model = de.build_model(SHIPPED)
    images = [random_image(64, 48, seed=seed) for seed in range(2)]
    with torch.no_grad():
        logits = [model([image])["pred_logits"][0] for image in images]
    return model, images, logits


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.floats(0, 0.4), is_thing=is_thing_forms(7),
       stuff_merge=st.sampled_from(["union", "official"]), target=st.integers(1, 40), which=st.integers(0, 1))
def test_segment_is_valid_or_refuses_clearly(random_small, threshold, is_thing, stuff_merge, target, which):
    """A random model keeps queries at low thresholds, so the merge has work to do."""
    model, images, logits = random_small
    try:
        result = de.segment(model, [images[which]], [(target, target + 3)], threshold, is_thing, stuff_merge)[0]
    except ValueError as err:
        assert "is_thing" in str(err), err
        return
    check_invariants(result, logits[which], (target, target + 3), threshold, is_thing, 7)


def test_merge_argument_errors_name_the_argument():
    logits, masks = threshold_case()
    outputs = {"pred_logits": logits, "pred_masks": masks}
    with pytest.raises(ValueError, match="is_thing has no entry for category id 3"):
        merge_panoptic(outputs, [(SIDE, SIDE)], is_thing={6: False})
    with pytest.raises(ValueError, match=r"is_thing has 2 entries .* category id 3"):
        merge_panoptic(outputs, [(SIDE, SIDE)], is_thing=[True, True])
    with pytest.raises(ValueError, match=r"is_thing\(3\) raised KeyError"):
        merge_panoptic(outputs, [(SIDE, SIDE)], is_thing=lambda c: {6: False}[c])
    with pytest.raises(TypeError, match="is_thing must be a function"):
        merge_panoptic(outputs, [(SIDE, SIDE)], is_thing="thing")
    with pytest.raises(ValueError, match="outputs lack"):
        merge_panoptic({"pred_logits": logits}, [(SIDE, SIDE)])
    with pytest.raises(ValueError, match="disagree on the batch size B or the number of queries N"):
        merge_panoptic({"pred_logits": logits, "pred_masks": masks[:, :3]}, [(SIDE, SIDE)])
    with pytest.raises(ValueError, match=r"sizes\[0\] = \(0, 64\)"):
        merge_panoptic(outputs, [(0, SIDE)])
    with pytest.raises(TypeError, match="whole numbers of pixels"):
        merge_panoptic(outputs, [(64.0, 64.0)])
    with pytest.raises(ValueError, match="batch of 0 images"):
        merge_panoptic({"pred_logits": logits[:0], "pred_masks": masks[:0]}, [])
    with pytest.raises(TypeError, match="threshold must be a number"):
        check_merge_options(threshold="0.85")
    assert merge_panoptic(outputs, torch.tensor([[SIDE, SIDE]]))[0].id_map.shape == (SIDE, SIDE)


# ----------------------------------------------------------------------------------------------
# PQ and the PNG encoding
# ----------------------------------------------------------------------------------------------

def test_pq_refuses_what_it_would_count_wrong(tmp_path):
    categories = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}]
    ids = np.array([[1, 1], [2, 2]])
    segments = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}]
    with pytest.raises(ValueError, match="segment id 1 is in segments_info twice"):
        pq.pq_stats_single(ids, segments + [{"id": 1, "category_id": 2}], ids, segments, categories)
    with pytest.raises(ValueError, match=r"segments_info\[0\] must be a dict with 'id' and 'category_id'"):
        pq.pq_stats_single(ids, [{"id": 1}], ids, segments, categories)
    with pytest.raises(ValueError, match="fractional"):
        pq.pq_stats_single(ids + 0.5, segments, ids, segments, categories)
    with pytest.raises(ValueError, match=r"pairs\[0\] must be"):
        pq.pq_compute([(ids, segments, 3)], categories)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        pq.pq_compute_files(str(bad), str(tmp_path), str(bad), str(tmp_path))
    with pytest.raises(ValueError, match=r"id_map has ids from 0 to 3; with num_segments=2"):
        de.merge.segment_boxes(torch.tensor([[0, 3]]), 2)
    with pytest.raises(ValueError, match="from 0 to 16777215"):
        de.id2rgb(np.array([[256 ** 3]]))
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        de.rgb2id(np.zeros((4, 5)))
