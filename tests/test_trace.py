"""The trace: every intermediate of one forward pass, consistent with the model's outputs."""
import torch

import detr_explained as de

from conftest import random_image


def test_trace_matches_forward_and_book_notation(r50):
    images = [random_image(128, 160), random_image(96, 192, seed=1)]
    trace = de.trace(r50, images)
    with torch.no_grad():
        out = r50(images)
    for key in ("pred_logits", "pred_boxes", "pred_masks"):
        assert torch.equal(trace.outputs[key], out[key])
    shapes = trace.shapes()
    # B=2, padded H x W = 128 x 192, N=100, M=8, d=256, L=6
    assert shapes["res5"] == (2, 2048, 4, 6) and shapes["res2"] == (2, 256, 32, 48)
    assert shapes["src_proj"] == shapes["memory"] == shapes["pos"] == (2, 256, 4, 6)
    assert shapes["hs"] == (6, 2, 100, 256) and trace.box_embeddings.shape == (2, 100, 256)
    assert shapes["attention_maps"] == (2, 100, 8, 4, 6)
    assert shapes["encoder_attention"] == (6, 2, 24, 24)
    assert shapes["decoder_attention"] == (6, 2, 100, 24)
    assert shapes["pred_masks"] == (2, 100, 32, 48)
    assert trace.sizes == [(128, 160), (96, 192)]
    # attention rows are distributions; padded cells of image 0 (last column) get nothing
    assert torch.allclose(trace.encoder_attention.sum(-1), torch.ones(6, 2, 24))
    padded = trace.feature_masks["res5"][0].flatten()
    assert padded.any() and (trace.decoder_attention[:, 0][..., padded] == 0).all()


def test_aux_outputs_for_training(tiny):
    tiny.detr.aux_loss = True
    try:
        out = tiny([random_image(64, 64)])
    finally:
        tiny.detr.aux_loss = False
    assert len(out["aux_outputs"]) == tiny.config.dec_layers - 1
    assert out["aux_outputs"][0]["pred_boxes"].shape == (1, 20, 4)
