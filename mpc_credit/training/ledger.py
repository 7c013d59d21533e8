"""A party's privacy ledger: the zCDP spent on its data, composed, persisted, and enforced.

Every training run that releases DP values about a party's applicants records its rho (zCDP;
the run's count and coefficient releases compose additively in rho). The total is turned into
(epsilon, delta) by dp-accounting's RDP accountant (zCDP rho is RDP of order a at rho * a), and
`charge` refuses a run BEFORE it starts when the total with the run would exceed the party's
budget. A run without DP (`--no-dp`) spends nothing but is recorded too (`record_no_dp`): every
owner then received exact statistics, and the ledger is where a party looks for what its data
went into. The file is JSON:

    {"party": "bank", "runs": [
        {"run": "...", "rho": 0.0123, "at": 1767000000.0},
        {"run": "...", "rho": null, "dp": false, "at": 1767000100.0}, ...]}

An entry without "dp" is a DP run (files written before no-DP runs were recorded); "dp": true
needs a finite rho >= 0, "dp": false needs rho null. Run ids are unique.

One writer at a time, across processes: `charge`, `record_no_dp` and `refund` hold an
exclusive flock on the sibling file `.NAME.lock` (0600), re-read the ledger under it (another
process may have charged since this one opened it), check the budget against those fresh
runs, and rewrite the file atomically (temporary file, fsync, rename, fsync of the folder).
`check` is a read-only pre-check against the runs last read.

A party may also cap how many runs it accepts in any 24 hours (`max_runs_per_day`, party.toml
`max_training_runs_per_day`): every run the ledger records (with DP or without, refunded runs
excepted) counts, checked with the budget under the lock; past it, `RunLimitReached`.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_credit.errors import DataError, RefusedError
from mpc_credit.files import fsync_dir, read_json

DELTA = 1e-6  # the delta of every (epsilon, delta) statement in training
DAY = 86_400.0  # the window of max_runs_per_day, in seconds


class RunLimitReached(RefusedError):
    """A run refused because the party's ledger already holds its runs of the last 24 hours."""


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


def is_dp(entry: dict[str, Any]) -> bool:
    """Whether a (checked) ledger entry is a DP run: entries from before "dp" existed are."""
    return entry.get("dp", True) is not False


def _entry_ok(entry: Any) -> bool:
    """A run id, and either DP with a finite rho >= 0 or no DP with rho null."""
    if not (isinstance(entry, dict) and isinstance(entry.get("run"), str)):
        return False
    dp, rho = entry.get("dp", True), entry.get("rho")
    if dp is False:
        return rho is None
    real = isinstance(rho, int | float) and not isinstance(rho, bool)
    return dp is True and real and math.isfinite(rho) and rho >= 0


def read_runs(path: Path, party: str) -> list[dict[str, Any]]:
    """The runs in `party`'s ledger file (none when it is absent); DataError naming the file
    when it is not that party's ledger or an entry is malformed."""
    if not path.exists():
        return []
    data = read_json(path, "privacy ledger", DataError)
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or data.get("party") != party:
        raise DataError(f"{path}: not the privacy ledger of party {party}")
    for i, entry in enumerate(runs):
        if not _entry_ok(entry):
            raise DataError(
                f"{path}: runs[{i}]: needs a run id and a finite rho >= 0 (or rho null with "
                "dp false)"
            )
    return runs


@dataclass
class Ledger:
    """One party's ledger file and budget (epsilon at DELTA)."""

    path: Path
    party: str
    budget: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    max_runs_per_day: int | None = None  # None: no limit on the number of runs

    @classmethod
    def open(
        cls, path: Path, party: str, budget: float, max_runs_per_day: int | None = None
    ) -> Ledger:
        """Read the ledger (an absent file is an empty ledger); a malformed one is an error."""
        if not (budget >= 0 and math.isfinite(budget)):
            raise DataError(f"{path}: party {party}: budget must be a finite epsilon >= 0")
        return cls(path, party, budget, read_runs(path, party), max_runs_per_day)

    def runs_since(self, since: float) -> int:
        """How many recorded runs were accepted at or after `since` (seconds since the epoch)."""
        return sum(
            1
            for r in self.runs
            if isinstance(r.get("at"), int | float)
            and not isinstance(r["at"], bool)
            and r["at"] >= since
        )

    def check_rate(self, now: float | None = None) -> None:
        """RunLimitReached when the runs of the last 24 hours already reach the limit."""
        limit = self.max_runs_per_day
        if limit is None:
            return
        now = time.time() if now is None else now
        if self.runs_since(now - DAY) >= limit:
            raise RunLimitReached(
                f"party {self.party}: {limit} training runs in the last 24 hours already "
                f"(max_training_runs_per_day)"
            )

    def _rhos(self) -> list[float]:
        return [r["rho"] for r in self.runs if is_dp(r)]

    def spent(self) -> float:
        """Epsilon (at DELTA) spent so far by DP runs (a run without DP spends no budget)."""
        return epsilon_of(self._rhos())

    def no_dp_runs(self) -> int:
        """How many runs without DP the ledger records: each gave exact statistics away."""
        return sum(not is_dp(r) for r in self.runs)

    def check(self, run: str, rho: float) -> None:
        """Refuse (RefusedError naming the party and its budget) if `run` would exceed it.

        Against the runs last read: a pre-check that writes nothing; `charge` checks again
        under the lock."""
        self._check_new(run)
        after = epsilon_of([*self._rhos(), rho])
        if after > self.budget:
            raise RefusedError(
                f"party {self.party}: run {run} would bring its privacy spending to "
                f"epsilon {after:.3g} (delta {DELTA:g}), over its budget of {self.budget:g} "
                f"(spent so far: {self.spent():.3g})"
            )

    def _check_new(self, run: str) -> None:
        if any(r["run"] == run for r in self.runs):
            raise RefusedError(f"party {self.party}: run {run} is already in its privacy ledger")

    def charge(self, run: str, rho: float) -> None:
        """Under the lock: re-read, check against the fresh runs, record the run's rho.

        RefusedError when it no longer fits (another process may have charged since `open`),
        DataError when the file has become malformed, OSError when it cannot be written."""
        with self._locked():
            self.check(run, rho)
            self.check_rate()
            self._write([*self.runs, {"run": run, "rho": rho, "at": time.time()}])

    def record_no_dp(self, run: str) -> None:
        """Under the lock: record that a run without DP was accepted (it spends no budget,
        but the party's exact statistics went into it); RefusedError for a known run id."""
        with self._locked():
            self._check_new(run)
            self.check_rate()
            entry = {"run": run, "rho": None, "dp": False, "at": time.time()}
            self._write([*self.runs, entry])

    def refund(self, run: str) -> None:
        """Take a DP `run` out again: only for a run that released nothing (it never started).

        A record of a run without DP stays: it says the run was accepted, not what it spent."""
        with self._locked():
            kept = [r for r in self.runs if r["run"] != run or not is_dp(r)]
            if len(kept) != len(self.runs):
                self._write(kept)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The ledger's one writer: an exclusive flock on `.NAME.lock`, the runs re-read.

        A lock file beside the ledger, not the ledger itself: the ledger is replaced by
        rename at every write, so a lock on it would guard a file no longer in place."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.runs = read_runs(self.path, self.party)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, runs: list[dict[str, Any]]) -> None:
        """`runs` on disk (fsynced, atomic), then in memory; an OSError before the rename
        leaves both as they were (after it, only the folder's fsync failed: the file is new)."""
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
        fsync_dir(self.path.parent)  # the rename itself survives a crash
