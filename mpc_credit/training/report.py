"""The training report: the validation document model risk management reads, at the model owner.

One self-contained HTML page (index.html): the plots are PNGs drawn by matplotlib (Agg) and
embedded as data: URLs, so the page can be filed or mailed as one file. Without the `report`
extra (matplotlib) the page has every table and says that the plots need it. Sections:

1. header: model name, date (UTC), mpc-credit version, SHA-256 of the model file;
2. warnings: the guardrails' findings (training/guardrails.py), or "none";
3. holdout: AUC, Gini and KS with 95 % stratified bootstrap intervals; approval and bad rates at
   the cutoff; a gains table over 10 bands of the holdout's scores; calibration (the PD the
   scaling implies against the observed bad rate per band); ROC, score and calibration plots;
4. information value of every candidate feature, kept or not;
5. training facts (rows, bad rate, overlap with each owner, ...: whatever the caller gives);
6. privacy: the DP mechanism, epsilon and delta per party this run, ledger totals, notes;
7. the model (every feature's bins and points) and the noisy binning tables (rows, DP-noised bad
   counts, WOE, IV) of the owner's OWN features only: the other owners' counts and WOE stay
   with them (docs/training.md, "What each step reveals").

It shows what the owner (also the lender) holds after a run and nothing more: the holdout's
scores are the ones the engine revealed to the lender. Every text from a file or a party goes
through html.escape.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from mpc_credit.errors import UsageError
from mpc_credit.training.guardrails import Finding, check_model, format_findings
from mpc_credit.training.metrics import Metrics, bootstrap, histogram, metrics, roc_curve

NO_DP_NOTE = (
    "Trained with --no-dp: no differential privacy protects the applicants; each owner "
    "received exact bad counts and coefficients."
)
PLOTS_HINT = "Plots need the report extra: pip install 'mpc-credit[report]' (matplotlib)."
BANDS = 10
BOOTSTRAP_RUNS = 1000
STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}"
    ".warnings{border:3px solid #b00;background:#fee;padding:.5em 1em}"
    ".ok{border:2px solid #080;background:#efe;padding:.5em 1em}"
    "figure{display:inline-block;margin:.5em}"
)

Plot = tuple[str, bytes]  # caption, PNG


@dataclass
class ReportData:
    """Everything the page shows. The fields after `notes` are optional: without them the page
    says what is not recorded (and computes the findings itself)."""

    model: dict[str, Any]
    owner: str
    kept: dict[str, list[str]]
    candidates: dict[str, list[str]]
    privacy: dict[str, tuple[float | None, float | None, float | None]]  # run, total, budget
    binning: list[dict[str, Any]] = field(default_factory=list)  # the owner's own features
    labels: np.ndarray | None = None  # the holdout's
    scores: np.ndarray | None = None
    metrics: Metrics | None = None
    notes: list[str] = field(default_factory=list)
    model_sha256: str | None = None  # of the model file as written
    findings: list[Finding] | None = None  # None: guardrails.check_model on model and holdout
    ivs: dict[str, dict[str, float]] = field(default_factory=dict)  # party -> feature -> IV
    facts: dict[str, Any] = field(default_factory=dict)  # shown as a table, in this order
    mechanism: list[str] = field(default_factory=list)  # paragraphs on the DP mechanism
    delta: float = 1e-6  # of every epsilon in `privacy`
    created: datetime | None = None  # None: now

    def holdout(self) -> tuple[np.ndarray, np.ndarray, Metrics] | None:
        """Labels, scores and metrics of the holdout, if there is one."""
        if self.labels is None or self.scores is None:
            return None
        y, s = np.asarray(self.labels), np.asarray(self.scores, dtype=float)
        return y, s, self.metrics or metrics(y, s)


# ---------------------------------------------------------------- helpers


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(rows: list[list[Any]]) -> str:
    """A two-column table: a name (header cell) and its value per row."""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.1%}"


def _rate(part: np.ndarray) -> float | None:
    """Share of ones (bad rate), None for no applicant."""
    return float(part.mean()) if len(part) else None


def intervals(edges: Sequence[float]) -> list[str]:
    """Numeric bins as text: bin i holds edges[i-1] <= x < edges[i]."""
    bounds = ["-inf", *(f"{e:g}" for e in edges), "inf"]
    return [f"[{lo}, {hi})" for lo, hi in pairwise(bounds)]


def _bins(feature: dict[str, Any]) -> list[str]:
    if feature["kind"] == "numeric":
        return intervals(feature["edges"])
    return [", ".join(g) for g in feature["categories"]]


def _version() -> str:
    try:
        return importlib.metadata.version("mpc-credit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def predicted_pd(scaling: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """PD the scaling implies: good:bad odds = odds * 2^((score - base_points) / pdo)."""
    log2_odds = np.log2(scaling["odds"]) + (scores - scaling["base_points"]) / scaling["pdo"]
    return 1 / (1 + np.exp2(np.clip(log2_odds, -1000, 1000)))


def bands(scores: np.ndarray, k: int = BANDS) -> np.ndarray:
    """Band 0..k-1 of each score by its mid-rank, lowest scores (riskiest) in band 0: k bands of
    equal size, except that tied scores share a band (so a band may hold none)."""
    _, index, count = np.unique(scores, return_inverse=True, return_counts=True)
    midrank = (np.cumsum(count) - (count - 1) / 2)[index.ravel()]  # 1-based, ties' mean
    return np.floor((midrank - 1) * k / len(scores)).astype(np.int64)


# ---------------------------------------------------------------- sections


def _header_section(data: ReportData) -> str:
    created = data.created or datetime.now(timezone.utc)
    rows = [
        ["model", data.model["name"]],
        ["model owner (lender)", data.owner],
        ["date", created.strftime("%Y-%m-%d %H:%M:%S UTC")],
        ["software", f"mpc-credit {_version()}"],
        ["model file SHA-256", data.model_sha256 or "not recorded"],
    ]
    return _pairs(rows)


def _warnings_section(data: ReportData) -> str:
    findings = data.findings
    if findings is None:
        h = data.holdout()
        findings = check_model(data.model, *(h[:2] if h else (None, None)))
    if not findings:
        return '<div class="ok"><h2>Warnings</h2><p>none</p></div>'
    items = "".join(f"<li>{escape(line)}</li>" for line in format_findings(findings))
    return f'<div class="warnings"><h2>Warnings ({len(findings)})</h2><ul>{items}</ul></div>'


def _holdout_section(data: ReportData, plots: list[Plot]) -> str:
    h = data.holdout()
    if h is None:
        return "<h2>Holdout</h2><p>No holdout (--test-ids) was given.</p>"
    y, s, m = h
    parts = [
        "<h2>Holdout</h2>",
        f"<p>{m.n} applicants ({m.bad} bad, {m.bad / m.n:.1%}), scored by the engine's MPC "
        f"scoring with this model; scores revealed to the lender only.</p>",
        _metrics_table(y, s, m),
        _cutoff_table(data.model["cutoff"], y, s),
        _gains_section(y, s),
        _calibration_section(data.model["scaling"], y, s),
        _distribution_table(y, s),
    ]
    parts += [_figure(caption, png) for caption, png in plots]
    if not plots:
        parts.append(f"<p><em>{escape(PLOTS_HINT)}</em></p>")
    return "\n".join(parts)


def _metrics_table(y: np.ndarray, s: np.ndarray, m: Metrics) -> str:
    ci = bootstrap(y, s, runs=BOOTSTRAP_RUNS)
    values = {"AUC": ("auc", m.auc), "Gini": ("gini", m.gini), "KS": ("ks", m.ks)}
    rows = [
        [name, f"{value:.4f}", f"{ci[key][0]:.4f} to {ci[key][1]:.4f}"]
        for name, (key, value) in values.items()
    ]
    header = ["measure", "value", f"95 % interval ({BOOTSTRAP_RUNS} stratified bootstrap runs)"]
    return _table(header, rows)


def _cutoff_table(cutoff: int, y: np.ndarray, s: np.ndarray) -> str:
    ok = s >= cutoff
    rows = [
        [
            cutoff,
            f"{ok.sum()} ({_pct(ok.mean())})",
            _pct(_rate(y[ok])),
            f"{(~ok).sum()} ({_pct((~ok).mean())})",
            _pct(_rate(y[~ok])),
        ]
    ]
    header = ["cutoff", "approved", "bad rate approved", "declined", "bad rate declined"]
    return "<h3>At the cutoff (approve iff score &gt;= cutoff)</h3>" + _table(header, rows)


def _band_range(s: np.ndarray) -> str:
    return f"{s.min():g} to {s.max():g}" if len(s) else "-"


def _gains_section(y: np.ndarray, s: np.ndarray) -> str:
    band = bands(s)
    total_bad, rows = max(int(y.sum()), 1), []
    bad_so_far = seen = 0
    for k in range(BANDS):
        yb = y[band == k]
        bad_so_far, seen = bad_so_far + int(yb.sum()), seen + len(yb)
        rows.append(
            [k + 1, _band_range(s[band == k]), len(yb), int(yb.sum()), _pct(_rate(yb)),
             _pct(bad_so_far / total_bad), _pct(1 - seen / len(s))]
        )  # fmt: skip
    header = ["band", "scores", "applicants", "bads", "bad rate", "bads captured (cum.)",
              "approval rate (cum.)"]  # fmt: skip
    return (
        "<h3>Gains table</h3><p>Ten bands of the holdout's scores by rank, the lowest scores "
        "(riskiest) first; tied scores share a band. Row k: a cutoff just above band k declines "
        "bands 1 to k, capturing the cumulative share of bads shown, and approves the rest at "
        "the approval rate shown.</p>" + _table(header, rows)
    )


def _calibration(
    scaling: dict[str, Any], y: np.ndarray, s: np.ndarray
) -> list[tuple[int, str, int, float | None, float | None]]:
    """Per band: number, scores, applicants, mean predicted PD, observed bad rate."""
    band, pd = bands(s), predicted_pd(scaling, s)
    return [
        (k + 1, _band_range(s[band == k]), int((band == k).sum()), _rate(pd[band == k]),
         _rate(y[band == k]))
        for k in range(BANDS)
    ]  # fmt: skip


def _calibration_section(scaling: dict[str, Any], y: np.ndarray, s: np.ndarray) -> str:
    rows = [[k, r, n, _pct(p), _pct(o)] for k, r, n, p, o in _calibration(scaling, y, s)]
    mean_pd = float(predicted_pd(scaling, s).mean())
    return (
        "<h3>Calibration</h3><p>Predicted PD from the score by the model's scaling: good:bad "
        f"odds = {scaling['odds']:g} &times; 2^((score &minus; {scaling['base_points']:g}) / "
        f"{scaling['pdo']:g}), PD = 1 / (1 + odds); against the observed bad rate per band "
        f"(all: predicted {_pct(mean_pd)}, observed {_pct(float(y.mean()))}).</p>"
        + _table(["band", "scores", "applicants", "predicted PD", "observed bad rate"], rows)
    )


def _distribution_table(y: np.ndarray, s: np.ndarray) -> str:
    edges, good, bad = histogram(y, s)
    rows = [
        [f"[{lo:.0f}, {hi:.0f}{']' if k == len(good) - 1 else ')'}", g, b]
        for k, (lo, hi, g, b) in enumerate(zip(edges, edges[1:], good, bad))
    ]
    return "<h3>Score distribution</h3>" + _table(["score", "good", "bad"], rows)


def _figure(caption: str, png: bytes) -> str:
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    c = escape(caption)
    return f'<figure><img src="{src}" alt="{c}"><figcaption>{c}</figcaption></figure>'


def _iv_section(data: ReportData) -> str:
    parties = list(dict.fromkeys([*data.candidates, *data.ivs]))
    rows = []
    for p in parties:
        ivs, kept = data.ivs.get(p, {}), set(data.kept.get(p, []))
        for f in dict.fromkeys([*data.candidates.get(p, []), *ivs]):
            iv = ivs.get(f)
            rows.append([p, f, "-" if iv is None else f"{iv:.4f}", "kept" if f in kept else "no"])
    return (
        "<h2>Information value of every candidate feature</h2><p>IV as each owner computed it "
        "from its binning (with DP-noised bad counts unless the run was --no-dp); the model "
        "keeps the features that reach the IV threshold. '-': not recorded.</p>"
        + _table(["party", "feature", "IV", "in the model"], rows)
    )


def _fact(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fact(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_fact(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _facts_section(data: ReportData) -> str:
    if not data.facts:
        return "<h2>Training facts</h2><p>Not recorded.</p>"
    rows = [[str(k).replace("_", " "), _fact(v)] for k, v in data.facts.items()]
    return "<h2>Training facts</h2>" + _pairs(rows)


def _privacy_section(data: ReportData) -> str:
    def eps(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    rows = [
        [p, eps(r), "-" if r is None else f"{data.delta:g}", eps(t), eps(b)]
        for p, (r, t, b) in data.privacy.items()
    ]
    header = ["party", "epsilon this run", "delta", "ledger total (epsilon)", "budget"]
    return "\n".join(
        [
            "<h2>Privacy spent</h2>",
            *(f"<p>{escape(m)}</p>" for m in data.mechanism),
            _table(header, rows),
            *(f"<p><strong>{escape(n)}</strong></p>" for n in data.notes),
        ]
    )


def _model_section(data: ReportData) -> str:
    m = data.model
    s = m["scaling"]
    parts = [
        "<h2>Model</h2>",
        f"<p>{escape(str(m['name']))}: {len(m['features'])} features; PDO {s['pdo']:g}, odds "
        f"{s['odds']:g}, base points {s['base_points']:g}; cutoff {m['cutoff']} (approve iff "
        f"score &gt;= cutoff); intercept {m['intercept']}.</p>",
    ]
    kept = [[p, ", ".join(k) or "-", len(data.candidates.get(p, []))] for p, k in data.kept.items()]
    parts.append(_table(["party", "kept features", "candidates"], kept))
    for f in m["features"]:
        rows = [[b, p] for b, p in zip(_bins(f), f["points"])]
        rows.append(["missing", f["missing_points"]])
        if f["kind"] == "categorical":
            rows.append(["other categories", f["other_points"]])
        parts.append(f"<h3>{escape(f['name'])} <small>({escape(f['owner'])})</small></h3>")
        parts.append(_table(["bin", "points"], rows))
    return "\n".join(parts)


def _binning_section(data: ReportData) -> str:
    parts = [
        f"<h2>Binning of {escape(data.owner)}'s own features</h2>",
        "<p>Rows per bin (exact, the owner's own), bad counts as released to the owner (with DP "
        "noise unless the run was --no-dp), WOE and IV. The other owners' tables stay with "
        "them.</p>",
    ]
    for f in data.binning:
        state = "kept" if f["kept"] else "dropped (IV below the threshold)"
        parts.append(f"<h3>{escape(f['name'])}: IV {f['iv']:.4f}, {state}</h3>")
        parts.append(_table(["bin", "rows", "bad (noisy)", "WOE"], f["bins"]))
    return "\n".join(parts)


# ---------------------------------------------------------------- plots


def figures(data: ReportData) -> list[Plot]:
    """ROC, score distribution and calibration as PNGs; none without a holdout or matplotlib."""
    h = data.holdout()
    if h is None:
        return []
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    y, s, m = h
    plots = []
    for caption, draw, size in (
        ("ROC curve", _draw_roc, (4.5, 4.5)),
        ("Holdout score distribution", _draw_scores, (6, 4)),
        ("Calibration: predicted PD against the observed bad rate", _draw_calibration, (4.5, 4.5)),
    ):
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        draw(fig.subplots(), data, y, s, m)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
        plots.append((caption, out.getvalue()))
    return plots


def _draw_roc(ax: Any, data: ReportData, y: np.ndarray, s: np.ndarray, m: Metrics) -> None:
    fpr, tpr = roc_curve(y, s)
    ax.plot(fpr, tpr, label=f"AUC {m.auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="good applicants declined", ylabel="bad applicants declined", title="ROC")
    ax.legend(loc="lower right")


def _draw_scores(ax: Any, data: ReportData, y: np.ndarray, s: np.ndarray, m: Metrics) -> None:
    edges, _, _ = histogram(y, s, bins=20)
    for label, name in ((0, "good"), (1, "bad")):
        ax.hist(s[y == label], bins=edges, alpha=0.6, label=name)
    ax.axvline(data.model["cutoff"], color="black", linestyle="--", label="cutoff")
    ax.set(xlabel="score", ylabel="applicants", title="Holdout score distribution")
    ax.legend()


def _draw_calibration(ax: Any, data: ReportData, y: np.ndarray, s: np.ndarray, m: Metrics) -> None:
    rows = [r for r in _calibration(data.model["scaling"], y, s) if r[2]]
    pd, observed = [r[3] for r in rows], [r[4] for r in rows]
    top = max([*pd, *observed, 0.01]) * 1.05
    ax.plot([0, top], [0, top], linestyle=":", color="grey")
    ax.plot(pd, observed, marker="o")
    ax.set(xlabel="predicted PD (band mean)", ylabel="observed bad rate", title="Calibration")
    ax.set(xlim=(0, top), ylim=(0, top))


# ---------------------------------------------------------------- page


def render(data: ReportData, plots: list[Plot]) -> str:
    """The page's HTML, with `plots` (caption, PNG) embedded in the holdout section."""
    title = escape(f"Training report: {data.model['name']}")
    sections = [
        _header_section(data),
        _warnings_section(data),
        _holdout_section(data, plots),
        _iv_section(data),
        _facts_section(data),
        _privacy_section(data),
        _model_section(data),
        _binning_section(data),
    ]
    body = "\n".join(sections)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    )


def write_report(folder: Path, data: ReportData) -> Path:
    """Write index.html, one self-contained page, into `folder` (created if absent)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {folder}: cannot create the folder: {exc}") from None
    page = folder / "index.html"
    tmp = page.with_name(f".index.html.{os.getpid()}.tmp")
    tmp.write_text(render(data, figures(data)), encoding="utf-8")
    os.replace(tmp, page)
    return page
