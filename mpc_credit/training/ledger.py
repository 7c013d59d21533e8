"""A party's privacy ledger: the zCDP spent on its data, composed, persisted, and enforced.

Every training run that releases DP values about a party's applicants records its rho (zCDP;
the run's count and coefficient releases compose additively in rho). The total is turned into
(epsilon, delta) by dp-accounting's RDP accountant (zCDP rho is RDP of order a at rho * a), and
`charge` refuses a run BEFORE it starts when the total with the run would exceed the party's
budget. The file is JSON, rewritten atomically (and fsynced) at each charge:
    {"party": "bank", "runs": [{"run": "...", "rho": 0.0123, "at": 1767000000.0}, ...]}
A run without DP (`--no-dp`) is not a DP release and is not recorded here; the caller states it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from mpc_credit.errors import DataError, RefusedError
from mpc_credit.files import read_json

DELTA = 1e-6  # the delta of every (epsilon, delta) statement in training


def epsilon_of(rhos: list[float], delta: float = DELTA) -> float:
    """(epsilon, delta)-DP of the composition of rho-zCDP releases (dp-accounting, RDP)."""
    import dp_accounting

    if not any(r > 0 for r in rhos):
        return 0.0
    acc = dp_accounting.rdp.RdpAccountant()
    for r in rhos:
        if r > 0:
            acc.compose(dp_accounting.ZCDpEvent(r))
    return float(acc.get_epsilon(delta))


def rho_for(epsilon: float, delta: float = DELTA) -> float:
    """The largest rho (to 1e-9 relative) whose release alone is (epsilon, delta)-DP."""
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    lo, hi = 0.0, epsilon
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if epsilon_of([mid], delta) <= epsilon else (lo, mid)
    return lo


@dataclass
class Ledger:
    """One party's ledger file and budget (epsilon at DELTA)."""

    path: Path
    party: str
    budget: float
    runs: list[dict] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, party: str, budget: float) -> Ledger:
        """Read the ledger (an absent file is an empty ledger); a malformed one is an error."""
        if not (budget >= 0 and math.isfinite(budget)):
            raise DataError(f"{path}: party {party}: budget must be a finite epsilon >= 0")
        if not path.exists():
            return cls(path, party, budget)
        data = read_json(path, "privacy ledger", DataError)
        runs = data.get("runs") if isinstance(data, dict) else None
        if not isinstance(runs, list) or data.get("party") != party:
            raise DataError(f"{path}: not the privacy ledger of party {party}")
        for i, r in enumerate(runs):
            ok = isinstance(r, dict) and isinstance(r.get("run"), str)
            rho = r.get("rho") if ok else None
            if not (isinstance(rho, int | float) and math.isfinite(rho) and rho >= 0):
                raise DataError(f"{path}: runs[{i}]: needs a run id and a finite rho >= 0")
        return cls(path, party, budget, runs)

    def spent(self) -> float:
        """Epsilon (at DELTA) spent so far."""
        return epsilon_of([r["rho"] for r in self.runs])

    def check(self, run: str, rho: float) -> None:
        """Refuse (RefusedError naming the party and its budget) if `run` would exceed it."""
        if any(r["run"] == run for r in self.runs):
            raise RefusedError(f"party {self.party}: run {run} is already in its privacy ledger")
        after = epsilon_of([*(r["rho"] for r in self.runs), rho])
        if after > self.budget:
            raise RefusedError(
                f"party {self.party}: run {run} would bring its privacy spending to "
                f"epsilon {after:.3g} (delta {DELTA:g}), over its budget of {self.budget:g} "
                f"(spent so far: {self.spent():.3g})"
            )

    def charge(self, run: str, rho: float) -> None:
        """Check, then record the run and rewrite the file atomically."""
        self.check(run, rho)
        self._write([*self.runs, {"run": run, "rho": rho, "at": time.time()}])

    def refund(self, run: str) -> None:
        """Take `run` out again: only for a run that released nothing (it never started)."""
        if any(r["run"] == run for r in self.runs):
            self._write([r for r in self.runs if r["run"] != run])

    def _write(self, runs: list[dict]) -> None:
        """`runs` on disk (fsynced, atomic), then in memory; OSError leaves both as they were."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        text = json.dumps({"party": self.party, "runs": runs}, indent=1) + "\n"
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())  # on disk before the run may start
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.runs = runs
