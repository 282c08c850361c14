"""A round's rows paint what its regions paint: regions made in ovseg_core, written through the
flows' record conversion, read back and painted from the store give the map the model's regions
give (both paint through `storage.terms`; this checks the conversion and the round trip)."""

import numpy as np

from flows.labelling import image_regions
from ovseg_core.selftrain import RefinedRegion, Region, paint_pseudo_labels
from storage.samples import PseudoLabelSamples
from storage.workspace import Workspace


def _rect(y0, y1, x0, x1):
    mask = np.zeros((8, 10), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _region(class_id, mask, confidence, source, sam_iou=None, agreement=None, refined=None):
    ys, xs = np.nonzero(mask)
    region = Region(class_id, mask, confidence, int(mask.sum()),
                    (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return RefinedRegion(region, gated=source != "none" or sam_iou is not None,
                         refined_mask=refined, sam_iou=sam_iou, agreement_iou=agreement,
                         accepted=source == "refined", paints=source)


def test_store_paints_what_the_model_paints(tmp_path):
    regions = [
        _region(1, _rect(0, 5, 0, 6), 0.95, "refined", 0.9, 0.7, refined=_rect(0, 6, 0, 7)),
        _region(2, _rect(3, 8, 4, 10), 0.99, "refined", 0.8, 0.8, refined=_rect(2, 8, 3, 10)),
        _region(3, _rect(6, 8, 0, 5), 0.97, "coarse", 0.3, 0.2, refined=_rect(0, 1, 0, 1)),
        _region(4, _rect(0, 3, 6, 10), 0.92, "none", 0.2, 0.1, refined=_rect(0, 8, 0, 10)),
        _region(5, _rect(0, 8, 0, 10), 0.40, "none"),  # never gated
    ]
    names = [f"class{i}" for i in range(6)]
    ws = Workspace(str(tmp_path / "ws"))
    ws.write_shard(1, 0, "k", [image_regions("a.png", (8, 10), regions, names, 0.9, 0.9, "s" * 64)])
    ws.commit_round(1, 1)
    stored = PseudoLabelSamples(ws, 1, lambda _: np.zeros((8, 10, 3), np.uint8)).label_map(0)
    expected = paint_pseudo_labels(regions, 8, 10)
    np.testing.assert_array_equal(stored, expected)
    # the untrusted-ignored region paints nothing
    assert set(np.unique(expected)) == {1, 2, 3, 65535}


def test_per_class_gates_gate_and_are_recorded_per_row(tmp_path):
    import pytest

    from flows.config import RunConfig
    from flows.labelling import gates
    from ovseg_core.errors import OvsegError
    from ovseg_core.selftrain import gate
    from storage.query import run_sql

    names = ["ground", "disk", "star"]
    cfg = RunConfig.model_validate({"self_training": {"gate_threshold": 0.9,
                                                      "class_gates": {"star": 0.5}}})
    thresholds = gates(cfg.self_training, names)
    assert thresholds == [0.9, 0.9, 0.5]
    regions = [_region(1, _rect(0, 4, 0, 4), 0.7, "none"), _region(2, _rect(4, 8, 4, 8), 0.7,
                                                                     "none")]
    assert gate([r.region for r in regions], thresholds) == [False, True]
    ws = Workspace(str(tmp_path / "ws"))
    ws.write_shard(1, 0, "k", [image_regions("a.png", (8, 10), regions, names, thresholds,
                                             0.9, "s" * 64)])
    rows = run_sql(ws, "SELECT class_name, gate_threshold FROM pseudo_labels ORDER BY 1")
    assert rows.to_pylist() == [{"class_name": "disk", "gate_threshold": pytest.approx(0.9)},
                                {"class_name": "star", "gate_threshold": pytest.approx(0.5)}]
    bad = RunConfig.model_validate({"self_training": {"class_gates": {"stra": 0.5}}})
    with pytest.raises(OvsegError, match="stra"):
        gates(bad.self_training, names)
