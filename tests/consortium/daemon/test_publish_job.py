"""A publish session's work over real MPC links: each party gets only its own parts, checked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon.models import ModelBook
from mpc_credit.consortium.daemon.publish_job import PublishingSide, decode_parts, encode_parts
from mpc_credit.consortium.model_parts import model_parts
from mpc_credit.consortium.publish_request import new_publish_request
from mpc_credit.consortium.records import CHAMPION
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.errors import SessionError
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL, OWNERS
from tests.consortium.daemon.test_models import bank_publishes, book
from tests.engine.test_links import _load, _session
from tests.engine.test_links import consortium as tls_consortium

BASE = load_model(MODEL)
tls = tls_consortium  # the three parties' TLS folders (a fixture)


def publish(folder: Path) -> tuple[dict[str, ModelBook], Any]:
    """A demo consortium's model books, and bank's request to publish version 2."""
    init_consortium(folder, MODEL)
    books = {p: book(folder, p) for p in OWNERS}
    key = load_signing_key(folder / "bank" / "signing.key")
    return books, new_publish_request(key, bank_publishes(folder, books, CHAMPION), timeout=30.0)


def test_each_party_receives_its_own_parts_over_its_link(tmp_path: Path, tls: Any) -> None:
    books, req = publish(tmp_path / "c")
    sides = {p: PublishingSide(p, books[p].cons, books[p]) for p in OWNERS}
    sides["bank"].offer(req.session, BASE)

    def body(party: str) -> Any:
        async def run(mpc: Any) -> Any:
            return await sides[party].run(mpc, req.session, req, list(OWNERS))

        return run

    _, folders, _ = tls
    results = asyncio.run(_session(_load(folders), {i: body(p) for i, p in enumerate(OWNERS)}))
    expected = model_parts(BASE, books["bank"].cons, "bank", ("shared", "secret"))
    assert results[0].full == BASE and results[0].parts == {}
    for i, party in enumerate(OWNERS[1:], 1):
        assert results[i].parts == expected[party]
    for party, pending in zip(OWNERS, results, strict=True):
        sides[party].commit(pending)
        version = books[party].registry.version(BASE.name, 2)
        assert version is not None and version.pending == ("bureau", "telco")
        files = ["model"] if party == "bank" else ["shared", "secret"]
        for name in files:
            assert books[party].store.file(BASE.name, 2, name).is_file()


def test_a_part_that_is_not_the_signed_one_is_refused_naming_the_owner(tmp_path: Path) -> None:
    books, req = publish(tmp_path / "c")
    parts = model_parts(BASE, books["bank"].cons, "bank", ("shared", "secret"))
    assert decode_parts(encode_parts(parts["telco"]), req, "telco") == parts["telco"]
    with pytest.raises(SessionError, match=r"bank sent a shared part of .*digest does not match"):
        decode_parts(encode_parts(parts["bureau"]), req, "telco")
    with pytest.raises(SessionError, match=r"bank sent parts of .* for other modes"):
        decode_parts(encode_parts({"shared": parts["telco"]["shared"]}), req, "telco")
    with pytest.raises(SessionError, match=r"bank sent parts of .* that are not JSON"):
        decode_parts(b"\xff", req, "telco")
