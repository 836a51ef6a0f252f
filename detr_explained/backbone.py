"""Stage 1: the ResNet backbone, from pixels to Res2..Res5.

Explained in ``book/01_backbone.ipynb``. The backbone is torchvision's ResNet with frozen batch
norm (torchvision.ops.FrozenBatchNorm2d: the ImageNet statistics stay fixed, since a detection
batch of two images is too small to estimate them). Its four stages give the four feature maps
the rest of DETR uses:

    res2 = layer1(stem(x))   (B, 256,  H/4,  W/4)    (channels for ResNet-50/101)
    res3 = layer2(res2)      (B, 512,  H/8,  W/8)
    res4 = layer3(res3)      (B, 1024, H/16, W/16)
    res5 = layer4(res4)      (B, 2048, H/32, W/32)   (H/16 in the DC5 variant)

Res5 feeds the transformer; Res4, Res3 and Res2 come back as the skip connections of the mask
head (``book/04_mask_head.ipynb``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d as _TorchvisionFrozenBatchNorm2d

from .config import DETRConfig
from .position_encoding import SinePositionEncoding
from .preprocessing import ImageBatch

LEVELS = ("res2", "res3", "res4", "res5")


class FrozenBatchNorm2d(_TorchvisionFrozenBatchNorm2d):
    """torchvision's FrozenBatchNorm2d (fixed ImageNet statistics: y = x * scale + bias), which
    at inference scales and shifts its input in place instead of allocating two new tensors.

    In torchvision's ResNet every batch norm reads a convolution's fresh output, which nothing
    else reads, so overwriting it is safe; the same two operations in the same order give the
    same bits. With gradients (training) it is torchvision's module unchanged. Calling a batch
    norm of the backbone by hand under ``torch.inference_mode()`` therefore overwrites its input:
    use ``torch.no_grad()`` for such experiments.

    Explained in ``book/01_backbone.ipynb``.
    """

    def forward(self, x):
        if not torch.is_inference_mode_enabled():
            return super().forward(x)
        scale = self.weight * (self.running_var + self.eps).rsqrt()  # (C,)
        bias = self.bias - self.running_mean * scale                   # (C,)
        return x.mul_(scale[:, None, None]).add_(bias[:, None, None])  # (B, C, h, w), in place

# "resnet10": ResNet-18's stages with one residual block each instead of two (4.9 M parameters
# instead of 11.2 M), small enough for a model trained on CPU and shipped in the repository.
RESNET10_BLOCKS = [1, 1, 1, 1]


class ResNetBackbone(nn.Module):
    """torchvision ResNet without its classifier, returning every stage's output.

    ``body`` keeps torchvision's own module names (conv1, bn1, layer1..layer4), so the official
    checkpoints' ``detr.backbone.0.body.*`` keys load unchanged.

    Explained in ``book/01_backbone.ipynb``.
    """

    def __init__(self, name: str = "resnet50", dilation: bool = False, frozen_batchnorm: bool = True,
                 res5_channels: Optional[int] = None):
        super().__init__()
        norm_layer = FrozenBatchNorm2d if frozen_batchnorm else nn.BatchNorm2d
        # DC5: layer4 keeps stride 1 and dilates its 3x3 convolutions by 2 instead.
        dilations = [False, False, dilation]
        if name == "resnet10":  # torchvision's ResNet class with one BasicBlock per stage
            self.body = torchvision.models.resnet.ResNet(
                torchvision.models.resnet.BasicBlock, RESNET10_BLOCKS, norm_layer=norm_layer,
                replace_stride_with_dilation=dilations)
        elif hasattr(torchvision.models, name):
            self.body = getattr(torchvision.models, name)(
                weights=None, norm_layer=norm_layer, replace_stride_with_dilation=dilations)
        else:
            raise ValueError(f"torchvision has no model {name!r}; use e.g. 'resnet50' or 'resnet101'")
        del self.body.fc, self.body.avgpool  # classification head: unused, and absent from checkpoints
        if res5_channels is not None:
            self._narrow_layer4(res5_channels, dilation)
        self.strides = {"res2": 4, "res3": 8, "res4": 16, "res5": 16 if dilation else 32}
        self.channels = {
            level: stage[-1].conv3.out_channels if hasattr(stage[-1], "conv3") else stage[-1].conv2.out_channels
            for level, stage in zip(LEVELS, (self.body.layer1, self.body.layer2, self.body.layer3, self.body.layer4))
        }

    def _narrow_layer4(self, res5_channels: int, dilation: bool) -> None:
        """Rebuild layer4 with ``res5_channels`` output channels, by torchvision's own
        ``_make_layer`` (same block type, same depth, same stride or DC5 dilation)."""
        body = self.body
        block = type(body.layer4[0])
        if res5_channels % block.expansion or res5_channels <= 0:
            raise ValueError(f"res5_channels={res5_channels} must be a positive multiple of "
                             f"{block.expansion} for {block.__name__}")
        body.inplanes = body.layer3[-1].conv3.out_channels if hasattr(body.layer3[-1], "conv3") \
            else body.layer3[-1].conv2.out_channels
        body.dilation = 1
        body.layer4 = body._make_layer(block, res5_channels // block.expansion, len(body.layer4),
                                       stride=2, dilate=dilation)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        body = self.body
        x = body.maxpool(body.relu(body.bn1(body.conv1(images))))  # (B, 64, H/4, W/4)
        res2 = body.layer1(x)     # (B, 256, H/4, W/4)
        res3 = body.layer2(res2)  # (B, 512, H/8, W/8)
        res4 = body.layer3(res3)  # (B, 1024, H/16, W/16)
        res5 = body.layer4(res4)  # (B, 2048, H/32, W/32)
        return {"res2": res2, "res3": res3, "res4": res4, "res5": res5}


def feature_size(side: int, stride: int) -> int:
    """A side of ``side`` pixels after the stride-2 layers that make ``stride`` (4 for Res2 ..
    32 for Res5). Each layer rounds up, so 1066 pixels give 34 cells at stride 32, not 33.3.

    Explained in ``book/01_backbone.ipynb``.
    """
    for _ in range(stride.bit_length() - 1):  # log2(stride) halvings
        side = -(-side // 2)                    # ceil(side / 2)
    return side


def downsample_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """The padding mask at a feature map's size, by nearest-neighbour sampling.

    (B, H, W) -> (B, h, w); True still means padding.

    Explained in ``book/01_backbone.ipynb``.
    """
    return F.interpolate(mask[None].float(), size=tuple(size))[0].to(torch.bool)  # (B, h, w)


class BackboneWithPosition(nn.Sequential):
    """The backbone (index 0) and the positional encoding (index 1), as in the official Joiner.

    Returns the four feature maps, the padding mask at each level and the positional encoding
    of Res5, the only level the transformer sees.

    Explained in ``book/01_backbone.ipynb``.
    """

    def __init__(self, config: DETRConfig):
        super().__init__(
            ResNetBackbone(config.backbone, config.dilation, config.frozen_batchnorm, config.res5_channels),
            SinePositionEncoding(config.hidden_dim // 2, config.pos_temperature),
        )

    @property
    def resnet(self) -> ResNetBackbone:
        return self[0]

    @property
    def position_encoding(self) -> SinePositionEncoding:
        return self[1]

    def forward(self, batch: ImageBatch):
        features = self.resnet(batch.tensors)
        masks = {level: downsample_mask(batch.mask, x.shape[-2:]) for level, x in features.items()}
        pos = self.position_encoding(masks["res5"])  # (B, d, H/32, W/32)
        return features, masks, pos
