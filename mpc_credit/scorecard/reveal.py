"""Reveal policies: what the receiver learns, and how results are written.

`score`    the integer score;
`decision` approve iff score >= cutoff, the score itself staying secret;
`reasons`  the decision, and for a declined applicant the (up to) 4 features that cost
           the most points against each feature's best bin, each given as its reason code
           and statement from the model (adverse-action reasons);
`pd`       the score and the probability of default the model's scaling gives it.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpc_credit.scorecard.model import ID_COLUMN, Scaling
from mpc_credit.scorecard.reasons import Reason, reasons_from_fields
from mpc_credit.vocabulary import REVEALS, Reveal

N_REASONS = 4


def columns(reveal: Reveal) -> list[str]:
    """The output columns after `applicant_id` for a reveal policy."""
    if reveal == "score":
        return ["score"]
    if reveal == "decision":
        return ["decision"]
    if reveal == "reasons":
        pairs = ([f"reason_{i}_code", f"reason_{i}_text"] for i in range(1, N_REASONS + 1))
        return ["decision", *(c for pair in pairs for c in pair)]
    return ["score", "pd"]


def pd_from_score(score: np.ndarray, scaling: Scaling) -> np.ndarray:
    """PD = 1 / (1 + odds), with good:bad odds = exp((score - offset) / factor)."""
    log_odds = (np.asarray(score, dtype=float) - scaling.offset) / scaling.factor
    return 1.0 / (1.0 + np.exp(log_odds))


@dataclass(frozen=True)
class Result:
    """What the receiver learned for each requested applicant, in request order.

    `values` is the revealed integer matrix: (score), (approve), (approve, label_1..4)
    with label f+1 for feature f and 0 for none, or (score) for `pd`. `reasons` gives
    each feature's public reason code and statement (default: its name for both).
    """

    reveal: Reveal
    ids: tuple[str, ...]
    values: np.ndarray
    feature_names: tuple[str, ...]
    scaling: Scaling
    reasons: tuple[Reason, ...] = ()

    def rows(self) -> list[list[str]]:
        """Table rows (without header), as written to the output CSV."""
        v = self.values
        if self.reveal == "score":
            cells = [[str(int(s))] for s in v[:, 0]]
        elif self.reveal == "decision":
            cells = [[_decision(a)] for a in v[:, 0]]
        elif self.reveal == "reasons":
            cells = [[_decision(r[0]), *(c for x in r[1:] for c in self._reason(x))] for r in v]
        else:
            pds = pd_from_score(v[:, 0], self.scaling)
            cells = [[str(int(s)), format_pd(p)] for s, p in zip(v[:, 0], pds)]
        return [[aid, *c] for aid, c in zip(self.ids, cells)]

    def _reason(self, label: int) -> tuple[str, str]:
        """Code and statement of the feature labelled `label` (f+1), empty for 0."""
        if not label:
            return "", ""
        f = int(label) - 1
        r = self.reasons[f] if self.reasons else None
        return (r.code, r.statement) if r else (self.feature_names[f], self.feature_names[f])

    def header(self) -> list[str]:
        """The table's columns: `applicant_id`, then the reveal policy's."""
        return [ID_COLUMN, *columns(self.reveal)]

    def records(self) -> list[dict[str, object]]:
        """The rows as JSON records: `score` an integer, `pd` a number (None if not finite)."""
        out: list[dict[str, object]] = [dict(zip(self.header(), r)) for r in self.rows()]
        if self.reveal in ("score", "pd"):
            for rec, s in zip(out, self.values[:, 0]):
                rec["score"] = int(s)
        if self.reveal == "pd":
            for rec, p in zip(out, pd_from_score(self.values[:, 0], self.scaling)):
                rec["pd"] = float(p) if math.isfinite(p) else None
        return out

    def write_csv(self, path: str | Path) -> None:
        """Write atomically: the file appears complete or not at all."""
        write_table(path, self.header(), self.rows())


def result_fields(result: Result) -> dict[str, Any]:
    """A result as JSON fields, for a local client that knows the ids it asked for."""
    s = result.scaling
    return {
        "reveal": result.reveal,
        "values": [[int(x) for x in row] for row in result.values],
        "feature_names": list(result.feature_names),
        "reasons": [[r.code, r.statement] for r in result.reasons] or None,
        "scaling": {"pdo": s.pdo, "odds": s.odds, "base_points": s.base_points},
    }


def result_from_fields(fields: Mapping[str, Any], ids: Sequence[str]) -> Result:
    """The result that `result_fields` wrote for `ids`; ValueError when it is not one."""
    reveal = fields.get("reveal")
    if reveal not in REVEALS:
        raise ValueError("unknown reveal policy")
    names = fields.get("feature_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("feature_names must be a list of names")
    width = 1 + N_REASONS if reveal == "reasons" else 1
    rows = fields.get("values")
    if not isinstance(rows, list) or len(rows) != len(ids):
        raise ValueError(f"expected {len(ids)} rows of values")
    top = len(names) if reveal == "reasons" else None
    for row in rows:
        if not isinstance(row, list) or len(row) != width or not all(_is_int(x) for x in row):
            raise ValueError(f"expected rows of {width} integers")
        if top is not None and not all(0 <= x <= top for x in row[1:]):
            raise ValueError("a reason code names no feature")
    sc = fields.get("scaling")
    if not isinstance(sc, dict) or not all(_is_number(sc.get(k)) for k in SCALING_FIELDS):
        raise ValueError("scaling must give pdo, odds and base_points")
    values = np.array(rows, dtype=np.int64).reshape(len(ids), width)
    scaling = Scaling(*(float(sc[k]) for k in SCALING_FIELDS))
    reasons = reasons_from_fields(fields.get("reasons"), names)
    return Result(reveal, tuple(ids), values, tuple(names), scaling, reasons)


SCALING_FIELDS = ("pdo", "odds", "base_points")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _decision(approve: int) -> str:
    return "approve" if int(approve) else "decline"


def format_pd(p: float) -> str:
    return f"{p:.6f}" if math.isfinite(p) else ""


def write_table(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write a CSV through a temporary file in the same folder and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
