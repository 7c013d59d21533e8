"""The training report page: strict HTML, every section, embedded PNGs, escaping, the tables
without matplotlib, and the bootstrap intervals it shows."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser

import numpy as np
import pytest

from mpc_credit.training import metrics as metrics_module
from mpc_credit.training.guardrails import Finding
from mpc_credit.training.metrics import bootstrap, metrics
from mpc_credit.training.report import (
    PLOTS_HINT,
    ReportData,
    bands,
    predicted_pd,
    render,
    write_report,
)

EVIL = "<script>alert(1)</script>"
SCALING = {"pdo": 20, "odds": 50, "base_points": 600}
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"}
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Strict parse: every non-void tag closed, in order; the tables under their headings."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._rows: list[list[str]] | None = None
        self._heading: list[str] | None = None
        self.feed(html)
        self.close()
        assert self.open == [], f"never closed: {self.open}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in VOID:
            return
        self.open.append(tag)
        if tag in ("h2", "h3"):
            self._heading = []
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows:
            self._rows[-1].append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in VOID, f"<{tag}/> is not a void element"
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"</{tag}>: a void element has no end tag"
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag == "table" and self._rows is not None:
            self.tables.setdefault(self.headings[-1] if self.headings else "", []).extend(
                self._rows
            )
            self._rows = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._rows and self._rows[-1] and self.open[-1] in ("td", "th"):
            self._rows[-1][-1] += data

    def table(self, heading: str) -> list[list[str]]:
        """The rows (header row first) of the tables under the heading that starts so."""
        return next(rows for h, rows in self.tables.items() if h.startswith(heading))


def model() -> dict:
    return {
        "name": f"m {EVIL}",
        "scaling": SCALING,
        "intercept": 430,
        "cutoff": 520,
        "features": [
            {"name": "age", "owner": "telco", "kind": "numeric", "edges": [25.0, 40.0],
             "points": [10, 60, 110], "missing_points": 50},
            {"name": EVIL, "owner": "bank", "kind": "categorical", "categories": [[EVIL], ["b"]],
             "points": [1, 40], "other_points": 20, "missing_points": 20},
        ],
    }  # fmt: skip


def holdout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores around 560 and labels drawn with the PD the scaling gives them: calibrated."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(560, 40, n))
    labels = (rng.random(n) < predicted_pd(SCALING, scores)).astype(np.int64)
    return labels, scores


def data(**extra) -> ReportData:
    binning = [{"name": EVIL, "kept": True, "iv": 0.1, "bins": [[EVIL, 10, 2.5, 0.3]]}]
    return ReportData(
        model=model(),
        owner="bank",
        kept={"bank": [EVIL], "telco": ["age"]},
        candidates={"bank": [EVIL, "weak"], "telco": ["age"]},
        privacy={"bank": (1.0, 1.0, 10.0), "telco": (1.0, 2.5, 10.0)},
        binning=binning,
        **extra,
    )


def full(n: int = 2000, **extra) -> ReportData:
    labels, scores = holdout(n)
    return data(
        labels=labels,
        scores=scores,
        metrics=metrics(labels, scores),
        model_sha256="0123456789abcdef" * 4,
        ivs={"bank": {EVIL: 0.1, "weak": 0.0123}, "telco": {"age": 0.25}},
        facts={"rows": 700, "bad_rate": 0.3, "overlap": {"telco": 650}, "excluded": [EVIL]},
        mechanism=[f"Gaussian noise on the bad counts {EVIL}."],
        created=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc),
        **extra,
    )


def test_every_text_is_escaped():
    page = render(full(), [])
    assert "<script>" not in page
    # name, kept list, IV table, facts, mechanism, feature, bin label, category
    assert page.count("&lt;script&gt;") >= 8
    parsed = Page(page)
    assert "script" not in parsed.tags
    assert sum(EVIL in t for t in parsed.text) >= 8  # shown as text
    assert "[-inf, 25)" in page and "[40, inf)" in page


def test_the_page_has_every_section_in_order():
    page = Page(render(full(), []))
    want = [
        "Warnings",
        "Holdout",
        "At the cutoff",
        "Gains table",
        "Calibration",
        "Score distribution",
        "Information value of every candidate feature",
        "Training facts",
        "Privacy spent",
        "Model",
        "age",
        "Binning of bank's own features",
    ]
    found = [next(i for i, h in enumerate(page.headings) if h.startswith(w)) for w in want]
    assert found == sorted(found)
    header = dict(map(tuple, page.tables[""]))
    assert header["model"] == f"m {EVIL}"
    assert header["date"] == "2025-03-01 12:00:00 UTC"
    assert header["software"] == f"mpc-credit {importlib.metadata.version('mpc-credit')}"
    assert header["model file SHA-256"] == "0123456789abcdef" * 4
    assert "not recorded" in render(data(), [])


def test_auc_gini_ks_carry_their_bootstrap_intervals():
    d = full()
    rows = Page(render(d, [])).table("Holdout")
    assert rows[0][2].startswith("95 % interval (1000 stratified bootstrap runs)")
    m = d.metrics
    for (name, value, interval), want in zip(rows[1:], (m.auc, m.gini, m.ks)):
        lo, hi = (float(x) for x in interval.split(" to "))
        assert float(value) == pytest.approx(want, abs=5e-5), name
        assert lo < float(value) < hi, name
    assert [r[0] for r in rows[1:]] == ["AUC", "Gini", "KS"]


def test_the_cutoff_table():
    d = full()
    (_, row) = Page(render(d, [])).table("At the cutoff")
    ok = d.scores >= 520
    assert row[0] == "520"
    assert row[1] == f"{ok.sum()} ({ok.mean():.1%})"
    assert row[2] == f"{d.labels[ok].mean():.1%}" and row[4] == f"{d.labels[~ok].mean():.1%}"


def test_the_gains_table_has_ten_bands_of_the_holdout():
    d = full()
    header, *rows = Page(render(d, [])).table("Gains table")
    assert header[:5] == ["band", "scores", "applicants", "bads", "bad rate"]
    assert [r[0] for r in rows] == [str(k) for k in range(1, 11)]
    assert sum(int(r[2]) for r in rows) == 2000
    assert sum(int(r[3]) for r in rows) == d.labels.sum()
    assert rows[-1][5] == "100.0%" and rows[-1][6] == "0.0%"
    rates = [float(r[4].rstrip("%")) for r in rows]
    assert rates[0] > rates[-1]  # the lowest scores are the riskiest
    lows = [float(r[1].split(" to ")[0]) for r in rows]
    assert lows == sorted(lows)


def test_bands_keep_tied_scores_together_and_split_by_rank():
    assert list(bands(np.arange(30.0))) == [k // 3 for k in range(30)]
    tied = bands(np.array([5.0, 1, 5, 5, 9, 5]))
    assert len({tied[i] for i in (0, 2, 3, 5)}) == 1 and tied[1] < tied[0] < tied[4]
    assert list(bands(np.array([3.0, 1, 2]), k=10)) == [6, 0, 3]  # more bands than scores


def test_calibration_compares_the_scalings_pd_with_the_bad_rate():
    d = full(20_000)
    header, *rows = Page(render(d, [])).table("Calibration")
    assert header[3:] == ["predicted PD", "observed bad rate"]
    assert len(rows) == 10
    for r in rows:  # calibrated by construction: within a few points per band of 2,000
        assert float(r[3].rstrip("%")) == pytest.approx(float(r[4].rstrip("%")), abs=3)
    assert predicted_pd(SCALING, np.array([600.0, 620.0]))[0] == pytest.approx(1 / 51)
    assert predicted_pd(SCALING, np.array([620.0]))[0] == pytest.approx(1 / 101)


def test_iv_facts_and_privacy_tables():
    page = Page(render(full(), []))
    assert page.table("Information value")[1:] == [
        ["bank", EVIL, "0.1000", "kept"],
        ["bank", "weak", "0.0123", "no"],
        ["telco", "age", "0.2500", "kept"],
    ]
    facts = dict(map(tuple, page.table("Training facts")))
    assert facts == {"rows": "700", "bad rate": "0.3", "overlap": "telco: 650", "excluded": EVIL}
    assert page.table("Privacy spent") == [
        ["party", "epsilon this run", "delta", "ledger total (epsilon)", "budget"],
        ["bank", "1", "1e-06", "1", "10"],
        ["telco", "1", "1e-06", "2.5", "10"],
    ]
    assert f"Gaussian noise on the bad counts {EVIL}." in page.text


def test_warnings_are_listed_at_the_top():
    found = [Finding("low-auc", f"holdout AUC 0.55 is below 0.6 {EVIL}")]
    page = render(full(findings=found), [])
    assert page.index("Warnings (1)") < page.index("<h2>Holdout</h2>")
    assert f"warning [low-auc]: holdout AUC 0.55 is below 0.6 {EVIL}" in Page(page).text
    assert "<h2>Warnings</h2><p>none</p>" in render(full(findings=[]), [])


def test_without_findings_the_page_runs_the_guardrails():
    # the test model (possible scores 441 to 580) and its holdout raise nothing, until a cutoff
    # of 900 approves nobody
    assert "<h2>Warnings</h2><p>none</p>" in render(full(), [])
    d = full()
    d.model["cutoff"] = 900
    page = Page(render(d, []))
    assert any(
        t.startswith("warning [cutoff-approval]: cutoff 900 approves 0.0%") for t in page.text
    )
    no_holdout = render(data(), [])
    assert "warning [cutoff-approval]" not in no_holdout and "<p>none</p>" in no_holdout


def test_written_page_embeds_its_plots_as_pngs(tmp_path):
    page = write_report(tmp_path / "r", full())
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["index.html"]  # one file
    parsed = Page(page.read_text(encoding="utf-8"))
    assert [i["alt"] for i in parsed.images] == [
        "ROC curve",
        "Holdout score distribution",
        "Calibration: predicted PD against the observed bad rate",
    ]
    for image in parsed.images:
        prefix, _, blob = image["src"].partition(",")
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(blob, validate=True)
        assert png[:8] == PNG and png[12:16] == b"IHDR"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 100 and height > 100
    assert PLOTS_HINT.replace("'", "&#x27;") not in page.read_text()


def test_without_matplotlib_the_page_has_every_table_and_says_so(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails: ImportError
    html = write_report(tmp_path, full()).read_text()
    page = Page(html)
    assert page.images == []
    assert PLOTS_HINT in page.text
    for heading in ("Holdout", "Gains table", "Calibration", "Score distribution", "Model"):
        assert page.table(heading)


def test_without_a_holdout_the_page_says_so(tmp_path):
    page = Page(write_report(tmp_path, data()).read_text())
    assert "No holdout (--test-ids) was given." in page.text
    assert page.images == []
    assert page.table("Privacy spent")


# ---------------------------------------------------------------- bootstrap (metrics.py)


def test_the_bootstrap_interval_holds_the_estimate_and_narrows_with_more_rows():
    widths = []
    for n in (500, 5000, 50_000):
        labels, scores = holdout(n, seed=n)
        m, ci = metrics(labels, scores), bootstrap(labels, scores)
        for key, value in (("auc", m.auc), ("gini", m.gini), ("ks", m.ks)):
            assert ci[key][0] < value < ci[key][1], (n, key)
        widths.append(ci["auc"][1] - ci["auc"][0])
    assert widths[0] > 2 * widths[1] > 4 * widths[2]  # about 1/sqrt(n): a factor 3.2 per step


def test_the_bootstrap_is_reproducible_and_exact_on_degenerate_holdouts():
    labels, scores = holdout(1000)
    assert bootstrap(labels, scores, runs=200, seed=1) == bootstrap(labels, scores, 200, 1)
    assert bootstrap(labels, scores, runs=200, seed=1) != bootstrap(labels, scores, 200, 2)
    y = np.array([1, 1, 0, 0, 0])
    assert bootstrap(y, np.array([1.0, 2, 3, 4, 5]), runs=50) == {
        "auc": (1.0, 1.0),
        "gini": (1.0, 1.0),
        "ks": (1.0, 1.0),
    }
    flat = bootstrap(y, np.full(5, 7.0), runs=50)
    assert flat == {"auc": (0.5, 0.5), "gini": (0.0, 0.0), "ks": (0.0, 0.0)}


def test_the_bootstraps_block_counts_give_the_exact_auc_and_ks():
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(2, 80))
        y = np.r_[0, 1, rng.integers(0, 2, n)]
        s = rng.integers(0, 12, n + 2).astype(float)
        index, blocks = metrics_module._blocks(y, s)
        bad = np.bincount(index[y == 1], minlength=blocks)[None]
        good = np.bincount(index[y == 0], minlength=blocks)[None]
        auc, ks = metrics_module._auc_ks(bad, good)
        m = metrics(y, s)
        assert auc[0] == pytest.approx(m.auc, abs=1e-12) and ks[0] == pytest.approx(m.ks, abs=1e-12)
