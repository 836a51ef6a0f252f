"""The official implementation (PyPI detr==0.1.4) as a test oracle.

It lives in .oracle/ (``make oracle`` installs it there with --no-deps), is put on sys.path only
here, and is patched just enough to import under current torchvision:
* its util/misc.py refuses torchvision >= 0.10 by parsing the version string: we show it "0.9.0"
  while it imports;
* it would ask for ImageNet weights: is_main_process() is made to return False;
* its panoptic post-processor needs panopticapi (not on PyPI): a stand-in module gives its two
  functions, written here from the COCO panoptic format (id = R + 256 G + 256^2 B).
"""
from __future__ import annotations

import functools
import os
import sys
import types

import numpy as np
import torch
import torchvision

ORACLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".oracle")


def _panopticapi_stand_in():
    utils = types.ModuleType("panopticapi.utils")

    def id2rgb(id_map):
        id_map = np.asarray(id_map).astype(np.int64)
        rgb = np.zeros(id_map.shape + (3,), dtype=np.uint8)
        for channel in range(3):
            rgb[..., channel] = id_map % 256
            id_map = id_map // 256
        return rgb

    def rgb2id(color):
        color = np.asarray(color).astype(np.int32)
        return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]

    utils.id2rgb, utils.rgb2id = id2rgb, rgb2id
    package = types.ModuleType("panopticapi")
    package.utils = utils
    return {"panopticapi": package, "panopticapi.utils": utils}


@functools.lru_cache(maxsize=None)
def load():
    """The oracle's modules: a namespace with backbone, transformer, detr, segmentation, ..."""
    if not os.path.isfile(os.path.join(ORACLE_DIR, "models", "detr.py")):
        raise RuntimeError(f"the official detr==0.1.4 oracle is missing from {ORACLE_DIR}: run `make oracle`")
    sys.modules.update(_panopticapi_stand_in())
    sys.path.insert(0, ORACLE_DIR)
    real_version = torchvision.__version__
    torchvision.__version__ = "0.9.0"
    try:
        import models.backbone as backbone
        import models.detr as detr
        import models.position_encoding as position_encoding
        import models.segmentation as segmentation
        import models.transformer as transformer
        import util.misc as misc
    finally:
        torchvision.__version__ = real_version
        sys.path.remove(ORACLE_DIR)
    backbone.is_main_process = lambda: False
    return types.SimpleNamespace(backbone=backbone, detr=detr, position_encoding=position_encoding,
                                 segmentation=segmentation, transformer=transformer, misc=misc)


@functools.lru_cache(maxsize=None)
def load_transforms():
    """The official datasets/transforms.py (its package imports pycocotools-based modules)."""
    load()
    sys.path.insert(0, ORACLE_DIR)
    try:
        import datasets.transforms as transforms
    finally:
        sys.path.remove(ORACLE_DIR)
    return transforms


def build_official(backbone_name="resnet50", dilation=False, num_classes=250, num_queries=100):
    """The official DETRsegm with the official sizes (its mask head is fixed to ResNet-50/101)."""
    oracle = load()
    backbone = oracle.backbone.Backbone(backbone_name, train_backbone=False,
                                        return_interm_layers=True, dilation=dilation)
    joiner = oracle.backbone.Joiner(backbone, oracle.position_encoding.PositionEmbeddingSine(128, normalize=True))
    joiner.num_channels = backbone.num_channels
    transformer = oracle.transformer.Transformer(
        d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
        dropout=0.1, normalize_before=False, return_intermediate_dec=True)
    detr = oracle.detr.DETR(joiner, transformer, num_classes=num_classes, num_queries=num_queries, aux_loss=False)
    return oracle.segmentation.DETRsegm(detr).eval()


def official_postprocessor(threshold=0.85):
    oracle = load()
    return oracle.segmentation.PostProcessPanoptic({i: i <= 90 for i in range(251)}, threshold=threshold)
