"""The training report page: every text escaped, the tables without matplotlib, and the hint."""

from __future__ import annotations

import numpy as np

from mpc_credit.training.metrics import metrics
from mpc_credit.training.report import PLOTS_HINT, ReportData, render, write_report

EVIL = "<script>alert(1)</script>"


def data(**extra) -> ReportData:
    model = {
        "name": f"m {EVIL}",
        "scaling": {"pdo": 20, "odds": 50, "base_points": 600},
        "intercept": 0,
        "cutoff": 500,
        "features": [
            {"name": "age", "owner": "telco", "kind": "numeric", "edges": [25.0, 40.0],
             "points": [10, 20, 30], "missing_points": 15},
            {"name": EVIL, "owner": "bank", "kind": "categorical", "categories": [[EVIL], ["b"]],
             "points": [1, 2], "other_points": 3, "missing_points": 3},
        ],
    }  # fmt: skip
    binning = [{"name": EVIL, "kept": True, "iv": 0.1, "bins": [[EVIL, 10, 2.5, 0.3]]}]
    return ReportData(
        model=model,
        owner="bank",
        kept={"bank": [EVIL], "telco": ["age"]},
        candidates={"bank": [EVIL], "telco": ["age"]},
        privacy={"bank": (1.0, 1.0, 10.0), "telco": (1.0, 2.5, 10.0)},
        binning=binning,
        **extra,
    )


def test_every_text_is_escaped():
    page = render(data(), [])
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") >= 5  # name, kept list, feature, bin label, category
    assert "[-inf, 25)" in page and "[40, inf)" in page


def test_without_plots_the_page_says_they_need_the_extra():
    y = np.array([0, 1, 0, 1, 0, 0])
    s = np.array([520, 430, 610, 455, 580, 700])
    page = render(data(labels=y, scores=s, metrics=metrics(y, s)), [])
    assert PLOTS_HINT.replace("'", "&#x27;") in page
    assert "<th>AUC</th>" in page and "Score distribution" in page


def test_written_page_has_the_plots_beside_it(tmp_path):
    y = np.array([0, 1, 0, 1, 0, 0])
    s = np.array([520, 430, 610, 455, 580, 700])
    page = write_report(tmp_path / "r", data(labels=y, scores=s, metrics=metrics(y, s)))
    html = page.read_text()
    assert (
        '<img src="roc.png"' in html and '<img src="scores.png"' in html
    )  # matplotlib: test extra
    assert (tmp_path / "r" / "roc.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "index.html",
        "roc.png",
        "scores.png",
    ]
