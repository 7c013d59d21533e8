"""/readyz never says ready while the daemon cannot serve the registry's champion."""

from __future__ import annotations

from mpc_credit.api.gateway import _champion_unserved


def status(offered: list[str], problems: list[str] = ()) -> dict[str, object]:  # type: ignore[assignment]
    row = {"model": "m@2", "status": "champion", "offered": offered}
    return {
        "models": [row, {"model": "m@1", "status": "candidate", "offered": ["shared"]}],
        "model_problems": list(problems),
    }


def test_a_champion_served_in_some_mode_is_ready() -> None:
    assert _champion_unserved(status(["shared"])) is None
    assert _champion_unserved({}) is None  # a daemon that does not say: the old behaviour


def test_a_champion_whose_file_does_not_match_is_not_ready_and_says_why() -> None:
    why = "m@2 (shared) not offered: models/m@2/shared.json does not match the registry's digest"
    assert _champion_unserved(status([], [why])) == why
    no_champion = {"models": [{"model": "m@1", "status": "candidate", "offered": ["shared"]}]}
    assert _champion_unserved(no_champion) == "no champion model in service"
