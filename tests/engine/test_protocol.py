"""The secure protocol against the plaintext reference, on random scorecards.

One MPyC runtime acts for every party here (the same protocol code, without sockets);
tests/test_simulate.py runs it across real processes over TLS.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_credit.engine.inputs import model_inputs, owner_inputs
from mpc_credit.engine.plan import make_plan
from mpc_credit.engine.protocol import score_batch
from mpc_credit.engine.topk import apply_plain, compile_topk
from mpc_credit.local import synthetic
from mpc_credit.scorecard.reference import reference
from mpc_credit.vocabulary import REVEALS
from tests.conftest import OWNERS


def secure_values(mpc, model, tables, ids, mode, reveal):
    plan = make_plan(
        model,
        OWNERS,
        mode=mode,
        reveal=reveal,
        receiver="bank",
        model_owner="bank",
        seats=[0, 0, 0],
    )
    held = {
        o: owner_inputs(model, plan, o, tables[name].select(ids))
        for o, name in enumerate(plan.owners)
    }
    mine = model_inputs(model, plan) if mode == "secret" else None
    return mpc.run(score_batch(mpc, plan, len(ids), held, mine))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_features=st.integers(1, 9),
    max_bins=st.integers(1, 6),
    max_points=st.integers(0, 90),
    n=st.integers(1, 40),
    mode=st.sampled_from(["shared", "secret"]),
    reveal=st.sampled_from(REVEALS),
)
def test_random_scorecards_match_reference(
    solo_runtime, seed, n_features, max_bins, max_points, n, mode, reveal
):
    rng = np.random.default_rng(seed)
    n_features = max(n_features, len(OWNERS))  # every party owns a feature
    model = synthetic.scorecard(rng, OWNERS, n_features, max_bins, max_points)
    ids, tables = synthetic.tables(rng, model, n, missing_share=0.2, absent_share=0.3)
    got = secure_values(solo_runtime, model, tables, ids, mode, reveal)
    assert np.array_equal(got, reference(model, tables, ids, reveal).values)


@pytest.mark.parametrize("mode", ["shared", "secret"])
def test_ties_in_cost_go_to_the_earlier_feature(solo_runtime, mode):
    rng = np.random.default_rng(7)
    model = synthetic.scorecard(rng, OWNERS, 12, max_bins=2, max_points=1)  # many equal costs
    ids, tables = synthetic.tables(rng, model, 60)
    got = secure_values(solo_runtime, model, tables, ids, mode, "reasons")
    assert np.array_equal(got, reference(model, tables, ids, "reasons").values)


@given(
    runs=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_topk_network_selects_the_k_largest_in_order(runs, k, seed):
    rng = np.random.default_rng(seed)
    width = sum(runs)
    keys = np.stack([rng.permutation(10 * width)[:width] for _ in range(20)])
    start = 0
    for r in runs:  # each run descending, as the owners share them
        keys[:, start : start + r] = -np.sort(-keys[:, start : start + r], axis=1)
        start += r
    labels = np.tile(np.arange(1, width + 1), (20, 1))
    net = compile_topk(runs, k)
    order = np.argsort(-keys, axis=1)[:, :k]
    want = np.take_along_axis(labels, order, axis=1)
    want = np.hstack([want, np.zeros((20, k - want.shape[1]), dtype=want.dtype)])
    assert np.array_equal(apply_plain(net, keys, labels), want)


def test_topk_network_sizes():
    """The comparator counts the benchmarks rely on (three owners' top-4, 20 singles)."""
    assert compile_topk([4, 4, 4], 4).comparators == 16
    assert compile_topk([1] * 20, 4).comparators == 57
