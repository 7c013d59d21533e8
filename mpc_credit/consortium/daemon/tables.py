"""A daemon's local data: its CSV for each model version it serves, loaded and checked at start.

The model versions themselves come from the party's registry and files (daemon/models.py,
`ModelBook.models`, keyed by ID@VERSION and mode), which change while the daemon runs.

The CSV is re-read only when its modification time changed, so an institution can
update its file without restarting its daemon, and a session costs no file I/O otherwise.
Columns that are not the party's features in a model are ignored; the daemon's log names
them in one warning per file version (not once per model mode or session).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from mpc_credit.consortium.config import PartyConfig
from mpc_credit.errors import DataError
from mpc_credit.scorecard.data import OwnerTable, ignored_note, load_owner_csv
from mpc_credit.scorecard.model import Scorecard

ModelKey = tuple[str, str]  # (ID@VERSION, mode)
log = logging.getLogger("mpc_credit.daemon")


class Served(Protocol):
    """Where the model versions come from (ModelBook): their scorecards by key, now."""

    models: Mapping[ModelKey, Scorecard]


class LocalData:
    """The party's rows for each model version it serves."""

    def __init__(self, cfg: PartyConfig, served: Served) -> None:
        self.party = cfg.party
        self.data: Path | None = cfg.data
        self.served = served
        self._tables: dict[ModelKey, tuple[float, OwnerTable]] = {}
        self._noted: set[tuple[float, str]] = set()  # (mtime, note) already logged
        for mid, mode in self.models:
            self.table(mid, mode)  # validate the CSV now: fail at start, not per session

    @property
    def models(self) -> Mapping[ModelKey, Scorecard]:
        """The scorecards this party serves now, by (ID@VERSION, mode)."""
        return self.served.models

    def table(self, mid: str, mode: str) -> OwnerTable | None:
        """This party's rows for a model, None when it owns none of its features."""
        model = self.models.get((mid, mode))
        if model is None or self.data is None or self.party not in model.owners:
            return None
        try:
            mtime = self.data.stat().st_mtime
        except OSError:
            raise DataError(f"{self.data}: file not found") from None
        cached = self._tables.get((mid, mode))
        if cached is None or cached[0] != mtime:
            cached = (mtime, load_owner_csv(self.data, model, self.party))
            self._tables[(mid, mode)] = cached
            note = ignored_note(cached[1], model)
            if note is not None and (mtime, note) not in self._noted:
                self._noted.add((mtime, note))
                log.warning("%s", note)
        return cached[1]

    def known_ids(self, mid: str, mode: str) -> frozenset[str] | None:
        """The applicants this party has rows for, None when it holds no rows for the model."""
        table = self.table(mid, mode)
        return None if table is None else frozenset(table.ids)
