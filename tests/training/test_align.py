"""PSI alignment equals the plaintext intersection; the owner never holds other lender ids."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.errors import DataError, SessionError
from mpc_credit.training.align import LenderSide, owner_alignment, owner_answer


def run(lender_ids, owner_ids):
    lender, request = LenderSide.start(lender_ids)
    setup, response, n = owner_answer(owner_ids, request)
    found = lender.intersect(setup, response)
    positions = lender.positions(found)
    return found, positions, owner_alignment(owner_ids, n, positions)


def test_alignment_equals_plaintext_intersection() -> None:
    rng = np.random.default_rng(3)
    lender_ids = [f"L{i}" for i in rng.permutation(400)]
    owner_ids = [f"L{i}" for i in rng.permutation(np.arange(150, 700))]
    found, positions, al = run(lender_ids, owner_ids)
    expected = [i for i, x in enumerate(lender_ids) if x in set(owner_ids)]
    assert found.tolist() == expected
    assert al.n == len(lender_ids)
    assert al.known.tolist() == [x in set(owner_ids) for x in lender_ids]
    for pos in range(al.n):  # each known lender row points at the owner's row of the same id
        if al.owner_rows[pos] >= 0:
            assert owner_ids[al.owner_rows[pos]] == lender_ids[pos]
    # What reaches the owner names intersection ids only.
    outside = set(lender_ids) - set(owner_ids)
    sent = {line.split("\t")[1] for line in positions.decode().splitlines()}
    assert sent == set(lender_ids) & set(owner_ids)
    assert not outside & set(al.ids)


def test_empty_intersection() -> None:
    found, _, al = run(["a", "b"], ["c"])
    assert found.size == 0 and not al.known.any() and al.ids == ()


def test_owner_refuses_an_id_it_does_not_hold() -> None:
    with pytest.raises(SessionError, match="line 1"):
        owner_alignment(["a", "b"], 5, b"0\tzzz")
    with pytest.raises(SessionError, match="line 2"):
        owner_alignment(["a", "b"], 5, b"0\ta\n0\tb")
    with pytest.raises(SessionError):
        owner_alignment(["a"], 1, b"3\ta")


def test_garbage_from_a_peer_is_one_error() -> None:
    with pytest.raises(SessionError, match="lender request"):
        owner_answer(["a"], b"\xff\x00garbage")
    lender, _ = LenderSide.start(["a"])
    with pytest.raises(SessionError):
        lender.intersect(b"\x01\x02", b"")


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(DataError, match="not unique"):
        LenderSide.start(["a", "a"])
