"""Reveal policies: what the receiver learns, and how results are written.

`score`    the integer score;
`decision` approve iff score >= cutoff, the score itself staying secret;
`reasons`  the decision, and for a declined applicant the (up to) 4 features that cost
           the most points against each feature's best bin (adverse-action reason codes);
`pd`       the score and the probability of default the model's scaling gives it.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc_credit.scorecard.model import ID_COLUMN, Scaling
from mpc_credit.vocabulary import Reveal

N_REASONS = 4


def columns(reveal: Reveal) -> list[str]:
    """The output columns after `applicant_id` for a reveal policy."""
    if reveal == "score":
        return ["score"]
    if reveal == "decision":
        return ["decision"]
    if reveal == "reasons":
        return ["decision"] + [f"reason_{i}" for i in range(1, N_REASONS + 1)]
    return ["score", "pd"]


def pd_from_score(score: np.ndarray, scaling: Scaling) -> np.ndarray:
    """PD = 1 / (1 + odds), with good:bad odds = exp((score - offset) / factor)."""
    log_odds = (np.asarray(score, dtype=float) - scaling.offset) / scaling.factor
    return 1.0 / (1.0 + np.exp(log_odds))


@dataclass(frozen=True)
class Result:
    """What the receiver learned for each requested applicant, in request order.

    `values` is the revealed integer matrix: (score), (approve), (approve, label_1..4)
    with label f+1 for feature f and 0 for none, or (score) for `pd`.
    """

    reveal: Reveal
    ids: tuple[str, ...]
    values: np.ndarray
    feature_names: tuple[str, ...]
    scaling: Scaling

    def rows(self) -> list[list[str]]:
        """Table rows (without header), as written to the output CSV."""
        v = self.values
        if self.reveal == "score":
            cells = [[str(int(s))] for s in v[:, 0]]
        elif self.reveal == "decision":
            cells = [[_decision(a)] for a in v[:, 0]]
        elif self.reveal == "reasons":
            cells = [[_decision(r[0]), *(self._name(x) for x in r[1:])] for r in v]
        else:
            pds = pd_from_score(v[:, 0], self.scaling)
            cells = [[str(int(s)), format_pd(p)] for s, p in zip(v[:, 0], pds)]
        return [[aid, *c] for aid, c in zip(self.ids, cells)]

    def _name(self, label: int) -> str:
        return self.feature_names[int(label) - 1] if label else ""

    def write_csv(self, path: str | Path) -> None:
        """Write atomically: the file appears complete or not at all."""
        write_table(path, [ID_COLUMN, *columns(self.reveal)], self.rows())


def json_record(header: Sequence[str], row: Sequence[str]) -> dict[str, object]:
    """A result row for JSON: `score` as an integer, `pd` as a number, the rest as text."""
    out: dict[str, object] = {}
    for col, cell in zip(header, row):
        if col == "score":
            out[col] = int(cell)
        elif col == "pd":
            out[col] = float(cell) if cell else None
        else:
            out[col] = cell
    return out


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
