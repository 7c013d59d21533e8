"""Shared fixtures: the demo consortium's files and a one-process MPyC runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc_credit.demo import DEMO_DIR, OWNERS
from mpc_credit.demo import MODEL as DEMO_MODEL

ROOT = Path(__file__).resolve().parents[1]
PARTIES = DEMO_DIR  # the demo consortium's files, shipped in the package (mpc_credit/demo/)
MODEL = PARTIES / DEMO_MODEL
GERMAN_CREDIT = ROOT / "scripts" / "data" / "germancredit.csv"  # the Statlog data (README)


@pytest.fixture(scope="session")
def demo_data() -> dict[str, Path]:
    return {o: PARTIES / o / "applicants.csv" for o in OWNERS}


@pytest.fixture(scope="session")
def solo_runtime():
    """One MPyC party acting for every owner: the protocol's arithmetic without the network."""
    from mpc_credit.engine.runtime import make_runtime

    return make_runtime(0, [("localhost", 0)], ssl=False)
