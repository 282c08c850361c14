"""Does DEA keep CLIP's image-text alignment at initialisation? (tiny preset, random images)

Prints the correlation between the DEA-on and DEA-off cost volumes at init for ovseg's DEA
and for the paper-literal one (eq. 1-2: residual on the projected Q, post-norm), read from the
commit that still had it:

    uv run python benchmarks/bench_dea_init.py [--literal-from f9a6f5d]
"""

from __future__ import annotations

import argparse
import subprocess
import types


def literal_dea(commit: str) -> types.ModuleType:
    """The `ovseg_core/dea.py` of `commit` as a module (the paper-literal DEA)."""
    source = subprocess.run(["git", "show", f"{commit}:ovseg_core/dea.py"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("literal_dea")
    exec(compile(source, f"{commit}:ovseg_core/dea.py", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--literal-from", default="f9a6f5d", help="commit with the literal DEA")
    args = parser.parse_args()
    import torch

    from ovseg_core.config import preset
    from ovseg_core.data.synth import world_classes
    from ovseg_core.modeling.build import build_model
    from ovseg_core.modeling.cost_volume import cost_volume

    model = build_model(preset("tiny"), seed=0).eval()
    text = model.encode_vocabulary(world_classes())
    torch.manual_seed(1)
    images = torch.rand(4, 3, 128, 128)
    with torch.no_grad():
        dense, _ = model.clip_visual(images)
        sam, valid = model.sam(images), model.sam_valid_grid(128, 128)
        off = cost_volume(dense, text).flatten()
        torch.manual_seed(0)
        literal = literal_dea(args.literal_from).DEA(dense.shape[1], sam.shape[1], heads=2,
                                                     ffn_ratio=2.0)
        for name, dea in (("paper-literal", literal), ("ovseg", model.dea)):
            on = cost_volume(dea(dense, sam, valid), text).flatten()
            r = torch.corrcoef(torch.stack([on, off]))[0, 1].item()
            print(f"{name:14s} correlation of DEA-on with DEA-off cost volume at init: {r:.3f}")


if __name__ == "__main__":
    main()
