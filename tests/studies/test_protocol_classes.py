"""The per-class diagnosis of the protocol (studies/protocol_classes.py): shares of a class's
pixels from a confusion matrix counted by hand, and the table's means, differences and
commonest mistake over workspaces."""

import pytest

from studies.protocol_classes import class_figures, table_rows

NAMES = ["ground", "disk", "star"]


def test_predicted_as_is_the_row_share():
    # rows: the label's class; columns: predicted. "star" has 10 pixels, 4 called ground
    result = {"confusion": [[8, 2, 0], [1, 9, 0], [4, 1, 5]],
              "per_class": {"ground": 70.0, "disk": 75.0, "star": 50.0}}
    figures = class_figures(result, NAMES)
    assert figures["predicted_as"]["star"] == pytest.approx(
        {"ground": 40.0, "disk": 10.0, "star": 50.0})
    assert figures["iou"] is result["per_class"]


def test_an_absent_class_has_an_empty_row():
    result = {"confusion": [[3, 0, 0], [0, 1, 0], [0, 0, 0]], "per_class": {}}
    assert class_figures(result, NAMES)["predicted_as"]["star"] == {}


def _workspace(a: float, b: float, d: float, d_row: dict) -> dict:
    def arm(iou: float, row: dict) -> dict:
        rows = {n: {} for n in NAMES} | {"star": row}
        return {"iou": {"star": iou}, "predicted_as": rows}

    return {"names": NAMES, "seen": [True, True, False], "arms": {
        "A": arm(a, {"ground": 50.0, "disk": 10.0, "star": 40.0}),
        "B": arm(b, {"ground": 90.0, "disk": 10.0, "star": 0.0}),
        "D": arm(d, d_row)}}


def test_rows_average_over_workspaces_and_pair_the_differences():
    rows = table_rows([_workspace(10, 0, 8, {"ground": 40.0, "disk": 20.0, "star": 40.0}),
                       _workspace(20, 2, 12, {"ground": 60.0, "disk": 30.0, "star": 10.0})])
    row = rows[2]
    assert row["class"] == "star" and not row["seen"]
    assert row["A"] == 15 and row["B"] == 1 and row["D"] == 10
    assert row["D-B"] == 9 and row["D-A"] == -5
    assert row["D_ground"] == 50 and row["B_ground"] == 90
    assert row["D_mistaken_for"] == ("disk", 25.0)  # ground is counted apart, not here
