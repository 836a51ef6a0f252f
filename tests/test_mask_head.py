"""Stage 4: the FPN-style mask head and its fast path for chosen queries."""
import pytest
import torch

import detr_explained as de
from detr_explained.mask_head import MaskHead

from conftest import random_image


def test_stage_shapes_r50(r50):
    trace = de.trace(r50, [random_image(128, 160)])
    shapes = {name: tuple(t.shape) for name, t in trace.mask_head_stages.items()}
    assert shapes == {
        "input": (100, 264, 4, 5), "lay1": (100, 264, 4, 5), "lay2": (100, 128, 4, 5),
        "+res4": (100, 128, 8, 10), "lay3": (100, 64, 8, 10),
        "+res3": (100, 64, 16, 20), "lay4": (100, 32, 16, 20),
        "+res2": (100, 32, 32, 40), "lay5": (100, 16, 32, 40), "out_lay": (100, 1, 32, 40),
    }
    # the concatenation is projected Res5 (d channels, same for every query) then the 8 maps
    stage_input = trace.mask_head_stages["input"]
    assert torch.equal(stage_input[:, :256], trace.src_proj.expand(100, -1, -1, -1))
    assert torch.equal(stage_input[:, 256:], trace.attention_maps[0])


def test_forward_selected_equals_forward(tiny):
    images = [random_image(96, 128, seed=1), random_image(128, 96, seed=2)]
    trace = de.trace(tiny, images)
    head = tiny.mask_head
    chosen = torch.tensor([[0, 3], [0, 7], [1, 0], [1, 19]])      # (image, query) pairs, sorted
    fpns = [trace.res4, trace.res3, trace.res2]
    with torch.inference_mode():
        fast = head.forward_selected(trace.src_proj, trace.attention_maps[chosen[:, 0], chosen[:, 1]],
                                     fpns, chosen[:, 0])
    full = trace.pred_masks[chosen[:, 0], chosen[:, 1]]
    assert fast.shape == (4, 1) + full.shape[-2:]
    assert (fast[:, 0] - full).abs().max() < 1e-5


def test_group_norm_widths_are_checked():
    with pytest.raises(ValueError, match="GroupNorm"):
        MaskHead(hidden_dim=64, nheads=4)


def test_convolutions_start_with_zero_bias(r50):
    assert all((m.bias == 0).all() for m in r50.mask_head.modules() if isinstance(m, torch.nn.Conv2d))
