"""PSI alignment equals the plaintext intersection; the owner never holds other lender ids."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from mpc_credit.errors import DataError, SessionError
from mpc_credit.training import align, session
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


def test_a_request_over_the_limit_is_refused_before_any_work(monkeypatch) -> None:
    """600,000 encrypted ids to an owner of 1,000 rows: refused on the message's length alone,
    before the PSI library is touched or the owner's ids are read."""
    owner_ids = [f"O{i}" for i in range(1000)]
    limit = align.request_limit(len(owner_ids))
    assert limit == max(align.REQUEST_FLOOR, align.REQUEST_FACTOR * 1000)
    huge = b"\x12\x21" + b"\x02" * 33  # one serialized element, repeated: never parsed
    request = huge * 600_000

    def no_work():
        raise AssertionError("PSI work started on an oversized request")

    monkeypatch.setattr(align, "_psi", no_work)
    monkeypatch.setattr(align, "_check_ids", lambda *a: no_work())
    with pytest.raises(SessionError, match=f"exceeds this party's limit of {limit} ids"):
        owner_answer(owner_ids, request)
    with pytest.raises(SessionError, match="exceeds this party's limit"):
        align.check_request_size(request, len(owner_ids))


def test_a_request_within_the_limit_is_answered_and_the_count_is_checked() -> None:
    assert align.request_limit(0) == align.REQUEST_FLOOR
    assert align.request_limit(10**9) == align.MAX_REQUEST_IDS
    _, request = LenderSide.start([f"L{i}" for i in range(50)])
    _, _, n = owner_answer(["L1", "L2"], request)
    assert n == 50


async def test_the_event_loop_stays_responsive_during_alignment(monkeypatch) -> None:
    """Lender and owner align 10,000 ids in one event loop (PSI steps take seconds here);
    a task ticking every 20 ms never waits 0.5 s."""
    boxes: dict[tuple[int, int], asyncio.Queue] = {}

    async def send_to(mpc, data, sender, receiver):
        if sender == receiver:
            return data if mpc.pid == receiver else None
        box = boxes.setdefault((sender, receiver), asyncio.Queue())
        if mpc.pid == sender:
            box.put_nowait(data)
        return await box.get() if mpc.pid == receiver else None

    monkeypatch.setattr(session, "send_to", send_to)
    ids = [f"A{i}" for i in range(10_000)]
    lender_ids = ids[2_000:]
    owner_ids = ids[:9_000]
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.02)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    lender_rows = np.arange(len(lender_ids), dtype=np.int64)
    features = [["x"], ["y"]]
    names = ["bank", "bureau"]
    start = time.perf_counter()
    _, owner_rows = await asyncio.gather(
        session._align(SimpleNamespace(pid=0), 0, lender_ids, features, names, lender_rows),
        session._align(SimpleNamespace(pid=1), 0, owner_ids, features, names, np.zeros(0)),
    )
    took = time.perf_counter() - start
    ticker.cancel()
    known = owner_rows >= 0
    assert known.sum() == 7_000
    assert all(owner_ids[r] == lender_ids[i] for i, r in enumerate(owner_rows) if r >= 0)
    assert took > 0.5, took  # long enough that running on the loop would show a stall
    assert max(gaps) < 0.5, (max(gaps), took)
    assert len(gaps) > 10, (len(gaps), took)
