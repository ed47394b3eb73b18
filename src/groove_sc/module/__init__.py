"""Pure torch modules and losses."""

from ._groupclip import group_clip_loss, multimodal_group_clip_loss, random_pair_labels
from ._module import GrooveModule

__all__ = [
    "GrooveModule",
    "group_clip_loss",
    "multimodal_group_clip_loss",
    "random_pair_labels",
]
