"""Self-training: regions and confidence gate, SAM prompts, batched SAM refinement, pseudo-labels.

See docs/architecture.md ("The round, as data") and method.md ("Self-training module").
"""

from ovseg_core.selftrain.prompts import PromptSettings, SamFrame
from ovseg_core.selftrain.pseudo_label import paint_pseudo_labels
from ovseg_core.selftrain.refiner import RefinedRegion, RefinerSettings, SamRefiner
from ovseg_core.selftrain.regions import DEFAULT_GATE, Region, find_regions, gate

__all__ = [
    "DEFAULT_GATE", "PromptSettings", "RefinedRegion", "RefinerSettings", "Region", "SamFrame",
    "SamRefiner", "find_regions", "gate", "paint_pseudo_labels",
]
