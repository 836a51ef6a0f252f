"""Stage 1: ResNet features Res2..Res5, their strides and padding masks."""
import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

import detr_explained as de
from detr_explained.backbone import LEVELS, ResNetBackbone, downsample_mask, feature_size

from conftest import random_image


def test_res2_to_res5_shapes_and_strides(r50):
    backbone = r50.detr.backbone.resnet
    features = backbone(random_image(128, 192)[None])
    expected = {"res2": (1, 256, 32, 48), "res3": (1, 512, 16, 24),
                "res4": (1, 1024, 8, 12), "res5": (1, 2048, 4, 6)}
    assert {k: tuple(v.shape) for k, v in features.items()} == expected
    assert backbone.strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


def test_dc5_keeps_res5_at_stride_16():
    backbone = ResNetBackbone("resnet50", dilation=True)
    features = backbone(random_image(64, 64)[None])
    assert features["res5"].shape == (1, 2048, 4, 4) and backbone.strides["res5"] == 16


def test_batch_norm_is_frozen_and_loads_without_num_batches_tracked(r50):
    body = r50.detr.backbone.resnet.body
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not any(p.requires_grad for name, p in body.named_parameters() if "bn" in name)
    state = body.state_dict()
    state["bn1.num_batches_tracked"] = torch.tensor(5)  # torchvision BatchNorm checkpoints have it
    body.load_state_dict(state, strict=True)


def test_resnet18_channels():
    backbone = ResNetBackbone("resnet18")
    assert backbone.channels == {"res2": 64, "res3": 128, "res4": 256, "res5": 512}


def test_unknown_backbone():
    with pytest.raises(ValueError, match="no model"):
        ResNetBackbone("resnet7")


def test_masks_follow_padding(r50):
    batch = de.ImageBatch.from_images([random_image(64, 128), random_image(128, 64)])
    features, masks, pos = r50.detr.backbone(batch)
    for level in LEVELS:
        assert masks[level].shape == (2,) + features[level].shape[-2:]
    # image 0 fills the top half, image 1 the left half
    assert not masks["res5"][0, :2].any() and masks["res5"][0, 2:].all()
    assert not masks["res5"][1, :, :2].any() and masks["res5"][1, :, 2:].all()
    assert pos.shape == (2, 256, 4, 4)


def test_downsample_mask_is_nearest():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :, 4:] = True
    assert downsample_mask(mask, (2, 2)).tolist() == [[[False, True], [False, True]]]


def test_resnet10_is_resnet18_with_one_block_per_stage():
    backbone = ResNetBackbone("resnet10", frozen_batchnorm=False)
    assert [len(stage) for stage in (backbone.body.layer1, backbone.body.layer2,
                                     backbone.body.layer3, backbone.body.layer4)] == [1, 1, 1, 1]
    assert backbone.channels == {"res2": 64, "res3": 128, "res4": 256, "res5": 512}
    assert isinstance(backbone.body.bn1, torch.nn.BatchNorm2d)


def test_feature_size_matches_the_resnet(r50):
    features = r50.detr.backbone.resnet(random_image(97, 131)[None])
    for level, stride in zip(LEVELS, (4, 8, 16, 32)):
        assert features[level].shape[-2:] == (feature_size(97, stride), feature_size(131, stride))
    assert feature_size(1066, 32) == 34


def test_narrow_layer4_is_torchvisions_block_with_fewer_channels():
    backbone = ResNetBackbone("resnet10", frozen_batchnorm=False, res5_channels=256)
    block = backbone.body.layer4[0]
    assert type(block) is type(backbone.body.layer3[0])  # torchvision's BasicBlock
    assert backbone.channels == {"res2": 64, "res3": 128, "res4": 256, "res5": 256}
    features = backbone(random_image(128, 96)[None])
    assert features["res5"].shape == (1, 256, 4, 3)
    assert sum(p.numel() for p in backbone.body.layer4.parameters()) < 1_300_000  # 3.7 M at 512
    # ResNet-50's layer4 narrowed keeps its three Bottlenecks, with expansion 4
    r50 = ResNetBackbone("resnet50", res5_channels=1024)
    assert len(r50.body.layer4) == 3 and r50.channels["res5"] == 1024
    with pytest.raises(ValueError, match="multiple of 4"):
        ResNetBackbone("resnet50", res5_channels=1022)


def test_narrow_resnet10_dc5_has_res5_at_stride_16():
    """DC5 on ResNet-10: layer4's single block is never dilated by torchvision, so it keeps stride 1."""
    backbone = ResNetBackbone("resnet10", dilation=True, frozen_batchnorm=False, res5_channels=256)
    features = backbone(random_image(128, 128)[None])
    assert [features[level].shape[-1] for level in LEVELS] == [32, 16, 8, 8]
    assert backbone.strides["res5"] == 16
    assert backbone.body.layer4[0].conv1.stride == (1, 1)
    assert backbone.body.layer4[0].conv1.dilation == (1, 1)


def test_synthetic_preset_backbone():
    """detr-tiny-synthetic: ResNet-10 with a 256-channel layer4 kept at stride 16 (DC5), ordinary BatchNorm."""
    config = de.get_config("detr-tiny-synthetic")
    backbone = ResNetBackbone(config.backbone, config.dilation, config.frozen_batchnorm, config.res5_channels)
    features = backbone(random_image(128, 128)[None])
    assert [tuple(features[level].shape[1:]) for level in LEVELS] == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (256, 8, 8)]
    assert backbone.strides["res5"] == 16
    assert isinstance(backbone.body.layer4[0].bn1, torch.nn.BatchNorm2d)
