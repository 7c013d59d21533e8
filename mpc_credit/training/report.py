"""The training report: one HTML page at the model owner (who is also the lender).

It shows what that party holds after a run and nothing more: the model (every feature's bins
and points), the noisy binning tables (rows, DP-noised bad counts, WOE, IV) of its OWN features
only (the other owners' counts and WOE stay with them, DESIGN.md), the holdout metrics with the
ROC curve and the score distribution (from the scores the engine revealed to the lender), and
the privacy spent per party (public). Plots are PNG files beside the page, drawn by matplotlib
when the `report` extra is installed; without it the page still has every table and says so.
Every text from a file or a party goes through html.escape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from mpc_credit.errors import UsageError
from mpc_credit.training.metrics import Metrics, histogram, roc_curve

NO_DP_NOTE = (
    "Trained with --no-dp: no differential privacy protects the applicants; each owner "
    "received exact bad counts and coefficients."
)
PLOTS_HINT = "Plots need the report extra: pip install 'mpc-credit[report]' (matplotlib)."


@dataclass
class ReportData:
    """Everything the page shows."""

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


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def intervals(edges: Sequence[float]) -> list[str]:
    """Numeric bins as text: bin i holds edges[i-1] <= x < edges[i]."""
    bounds = ["-inf", *(f"{e:g}" for e in edges), "inf"]
    return [f"[{lo}, {hi})" for lo, hi in pairwise(bounds)]


def _bins(feature: dict[str, Any]) -> list[str]:
    if feature["kind"] == "numeric":
        return intervals(feature["edges"])
    return [", ".join(g) for g in feature["categories"]]


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


def _holdout_section(data: ReportData, plots: list[str]) -> str:
    if data.metrics is None or data.labels is None or data.scores is None:
        return "<h2>Holdout</h2><p>No holdout (--test-ids) was given.</p>"
    m = data.metrics
    parts = [
        "<h2>Holdout</h2>",
        f"<p>{m.n} applicants ({m.bad} bad), scored by the engine's MPC scoring with this "
        f"model; scores revealed to the lender only.</p>",
        _table(["AUC", "Gini", "KS"], [[f"{m.auc:.4f}", f"{m.gini:.4f}", f"{m.ks:.4f}"]]),
    ]
    edges, good, bad = histogram(data.labels, data.scores)
    rows = [
        [f"[{lo:.0f}, {hi:.0f}{']' if k == len(good) - 1 else ')'}", g, b]
        for k, (lo, hi, g, b) in enumerate(zip(edges, edges[1:], good, bad))
    ]
    parts += ["<h3>Score distribution</h3>", _table(["score", "good", "bad"], rows)]
    parts += [f'<img src="{escape(p)}" alt="{escape(p)}">' for p in plots]
    if not plots:
        parts.append(f"<p><em>{escape(PLOTS_HINT)}</em></p>")
    return "\n".join(parts)


def _privacy_section(data: ReportData) -> str:
    def eps(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    rows = [[p, eps(r), eps(t), eps(b)] for p, (r, t, b) in data.privacy.items()]
    return "\n".join(
        [
            "<h2>Privacy spent</h2>",
            _table(["party", "this run (epsilon)", "ledger total", "budget"], rows),
            *(f"<p><strong>{escape(n)}</strong></p>" for n in data.notes),
        ]
    )


def _plots(folder: Path, data: ReportData) -> list[str]:
    """roc.png and scores.png beside the page, or none without matplotlib."""
    if data.labels is None or data.scores is None:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fpr, tpr = roc_curve(data.labels, data.scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUC {data.metrics.auc:.3f}" if data.metrics else None)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="good applicants declined", ylabel="bad applicants declined", title="ROC")
    ax.legend(loc="lower right")
    _save(fig, folder / "roc.png")
    edges, _, _ = histogram(data.labels, data.scores, bins=20)
    fig, ax = plt.subplots(figsize=(6, 4))
    for y, name in ((0, "good"), (1, "bad")):
        ax.hist(data.scores[data.labels == y], bins=edges, alpha=0.6, label=name)
    ax.axvline(data.model["cutoff"], color="black", linestyle="--", label="cutoff")
    ax.set(xlabel="score", ylabel="applicants", title="Holdout score distribution")
    ax.legend()
    _save(fig, folder / "scores.png")
    plt.close("all")
    return ["roc.png", "scores.png"]


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)


def render(data: ReportData, plots: list[str]) -> str:
    """The page's HTML."""
    title = escape(f"Training report: {data.model['name']}")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}"
    )
    sections = [
        _holdout_section(data, plots),
        _privacy_section(data),
        _model_section(data),
        _binning_section(data),
    ]
    body = "\n".join(sections)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    )


def write_report(folder: Path, data: ReportData) -> Path:
    """Write index.html (and the plots) into `folder`, created if absent; returns the page."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {folder}: cannot create the folder: {exc}") from None
    page = folder / "index.html"
    tmp = page.with_name(f".index.html.{os.getpid()}.tmp")
    tmp.write_text(render(data, _plots(folder, data)), encoding="utf-8")
    os.replace(tmp, page)
    return page
