"""detr_explained: every stage of DETR's panoptic segmentation, readable and traced.

The modules follow the data flow, and the book's chapters follow the modules:

    preprocessing, backbone, position_encoding  book/01_backbone.ipynb
    transformer                                 book/02_transformer.ipynb
    attention_maps                              book/03_attention_maps.ipynb
    mask_head                                   book/04_mask_head.ipynb
    merge, inference                            book/05_argmax_merge.ipynb
    detr (the assembly), hub (checkpoints), trace (the record of every intermediate)
    explore (a view and an ipywidgets panel per stage)  chapters 2, 3, 4, 5 and 7
"""
from .config import CONFIGS, DETRConfig, get_config
from .detr import DETR, DETRPanoptic
from .hub import CHECKPOINTS, CheckpointError, build_model, load_checkpoint, read_checkpoint
from .inference import segment
from .merge import PanopticResult, id2rgb, merge_panoptic, rgb2id
from .preprocessing import ImageBatch, denormalize, load_image, prepare_image
from .trace import DETRTrace, trace

__all__ = [
    "CONFIGS", "DETRConfig", "get_config", "DETR", "DETRPanoptic", "CHECKPOINTS", "CheckpointError",
    "build_model", "load_checkpoint", "read_checkpoint", "segment", "PanopticResult", "id2rgb",
    "merge_panoptic", "rgb2id", "ImageBatch", "denormalize", "load_image", "prepare_image",
    "DETRTrace", "trace",
]
