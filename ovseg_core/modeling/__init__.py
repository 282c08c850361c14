"""The boxes of the paper's figure, one file each.

| file | box |
|---|---|
| `clip_encoder.py` | CLIP ConvNeXt image encoder (dense features + skips), frozen text tower |
| `sam_encoder.py` | frozen SAM image encoder (segment-anything / MobileSAM), weight lookup |
| `dea.py` | dual-embedding aggregation (CLIP and SAM features fused) |
| `cost_volume.py` | the N classes x P templates cost volume |
| `decoder.py` | the SED-style cost-aware decoder |
| `model.py` | `STSeg`, the whole forward pass |
| `build.py` | building a model (or its skeleton) from a `ModelConfig` |

Self-training (regions, SAM prompting, pseudo-labels) is in `ovseg_core/selftrain/`.
"""
