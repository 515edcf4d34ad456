"""The tables `nero eval` writes."""

from __future__ import annotations

from pipeline.evaluation.metrics import ALL
from pipeline.evaluation.report import markdown_table


def test_markdown_table_bolds_the_best_of_each_column():
    def metrics(auroc, fpr):
        return {"auroc": auroc, "fpr95": fpr, "aupr_in": auroc, "aupr_out": auroc}

    results = {"a": {"x": metrics(90.0, 30.0), ALL: metrics(90.0, 30.0)},
               "b": {"x": metrics(80.0, 20.0), ALL: metrics(80.0, 20.0)}}
    table = markdown_table(results, {"a": {"validation_auroc": 70.0}, "b": {}})
    assert "| a | **90.00** / 30.00 | **90.00** / 30.00 |" in table
    assert "| b | 80.00 / **20.00** | 80.00 / **20.00** |" in table
    assert "| a | **90.00** | 30.00 | **90.00** | **90.00** | 70.00 |" in table
