"""detr_explained: every stage of DETR's panoptic segmentation, readable and traced.

The modules follow the data flow, and the book's chapters follow the modules:

    examples (the photo batch, the trained model on its scene)  book/00_meet_the_model.ipynb
    preprocessing, backbone, position_encoding  book/01_backbone.ipynb
    transformer, findings                       book/02_transformer.ipynb
    attention_maps, attention_analysis          book/03_attention_maps.ipynb
    mask_head, mask_analysis                    book/04_mask_head.ipynb
    merge, inference                            book/05_argmax_merge.ipynb
    demo (the planted stand-in)                 book/appendix_side_topics.ipynb
    detr (the assembly), hub (checkpoints), trace (the record of every intermediate)
    figures (every figure, and the conventions they follow), diagrams   all chapters
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
