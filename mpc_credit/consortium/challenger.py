"""Champion and challenger side by side: the challenger's result, kept for monitoring only.

`score --with-challenger` (and the Python API `score_both`) runs the request as usual (the
result that decides), then, when the registry has a challenger in service other than the
model that decided, the same applicants with the challenger. The challenger's result never
replaces the decision: it is returned apart and appended to `challenger.jsonl` in the
receiver's folder (mode 0600, one JSON line per request: the time, both versions and their
sessions, the challenger's records), which is where model monitoring reads it. A challenger
session that fails costs the decision nothing: the failure is recorded there instead.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.consortium.config import PartyConfig, load_party_config
from mpc_credit.consortium.control import MODELS, ControlRequest
from mpc_credit.consortium.requester import ScoreOutcome, registry_op, score_request
from mpc_credit.errors import MpcCreditError

MONITORING_FILE = "challenger.jsonl"


@dataclass(frozen=True)
class Both:
    """The result that decides, and the challenger's (None: no challenger, or it failed)."""

    decision: ScoreOutcome
    challenger: ScoreOutcome | None
    note: str  # what happened to the challenger, in one line
    kept: Path | None  # where its result was kept


async def score_both(config: str | Path | PartyConfig, ids: Sequence[str], **kw: Any) -> Both:
    """`score_request(config, ids, **kw)`, then the registry's challenger on the same ids,
    kept for monitoring (see the module docstring)."""
    cfg = config if isinstance(config, PartyConfig) else load_party_config(config)
    decision = await score_request(cfg, ids, **kw)
    listed = await registry_op(cfg, ControlRequest(MODELS))
    challenger = next(
        (m["model"] for m in listed["models"] if m["status"] == "challenger" and m["in_service"]),
        None,
    )
    if challenger is None or challenger == decision.model:
        return Both(decision, None, "no challenger in service", None)
    kw = {**kw, "model_id": challenger, "progress": None}
    try:
        other = await score_request(cfg, ids, **kw)
    except MpcCreditError as exc:
        path = keep(cfg.folder, decision, None, f"{challenger}: {exc}")
        return Both(decision, None, f"challenger {challenger} failed: {exc}", path)
    path = keep(cfg.folder, decision, other, "")
    return Both(decision, other, f"challenger {other.model} scored for monitoring", path)


def keep(folder: Path, decision: ScoreOutcome, other: ScoreOutcome | None, failure: str) -> Path:
    """Append one monitoring line to FOLDER/challenger.jsonl (created mode 0600)."""
    line: dict[str, Any] = {
        "ts": time.time(),
        "champion": {"model": decision.model, "digest": decision.model_digest},
        "session": decision.session,
    }
    if other is not None:
        line["challenger"] = {
            "model": other.model,
            "digest": other.model_digest,
            "session": other.session,
            "results": other.result.records(),
        }
    else:
        line["challenger_failed"] = failure
    path = folder / MONITORING_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
    return path
