"""Fixtures of the attack tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def folders(tmp_path: Path) -> list[Path]:
    """Every party's TLS folder of a fresh three-party consortium (MPC link attacks)."""
    from mpc_credit.consortium import pki

    return pki.ephemeral_consortium(tmp_path / "tls", 3)
