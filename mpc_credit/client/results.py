"""The client's typed results, parsed from the API's JSON (unknown fields are ignored, so a
newer server does not break an older client)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoreResult:
    applicant_id: str
    score: int


@dataclass(frozen=True)
class DecisionResult:
    applicant_id: str
    decision: str  # approve | decline

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


@dataclass(frozen=True)
class Reason:
    """An adverse-action reason: the model's code and statement for a feature."""

    code: str
    text: str


@dataclass(frozen=True)
class ReasonsResult:
    applicant_id: str
    decision: str
    reasons: tuple[Reason, ...]  # up to 4, costliest first; () when approved

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


@dataclass(frozen=True)
class PdResult:
    applicant_id: str
    score: int
    pd: float | None


Result = ScoreResult | DecisionResult | ReasonsResult | PdResult


@dataclass(frozen=True)
class ModelRef:
    id: str
    digest: str


@dataclass(frozen=True)
class Decisions:
    """A decision call's answer: the model used and one result per applicant, in order."""

    model: ModelRef
    results: tuple[Result, ...]
    session: str | None = None  # the session id in every party's audit log


@dataclass(frozen=True)
class Feature:
    name: str
    owner: str
    bins: int


@dataclass(frozen=True)
class Model:
    id: str
    digest: str
    owner: str
    name: str | None
    owners: tuple[str, ...]
    features: tuple[Feature, ...]
    reveal: tuple[str, ...]
    modes: tuple[str, ...]


@dataclass(frozen=True)
class BatchJob:
    id: str
    state: str  # queued | running | done | failed
    applicants: int
    reveal: str
    model: ModelRef
    message: str
    result: str | None
    error: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str
    party: str | None = None


def result_of(reveal: str, r: Mapping[str, Any]) -> Result:
    aid = str(r["applicant_id"])
    if reveal == "score":
        return ScoreResult(aid, int(r["score"]))
    if reveal == "decision":
        return DecisionResult(aid, str(r["decision"]))
    if reveal == "reasons":
        pairs = (
            Reason(str(r[f"reason_{i}_code"]), str(r[f"reason_{i}_text"])) for i in range(1, 5)
        )
        return ReasonsResult(aid, str(r["decision"]), tuple(p for p in pairs if p.code))
    pd = r.get("pd")
    return PdResult(aid, int(r["score"]), None if pd is None else float(pd))


def decisions_of(reveal: str, doc: Mapping[str, Any], session: str | None) -> Decisions:
    m = doc["model"]
    return Decisions(
        ModelRef(str(m["id"]), str(m["digest"])),
        tuple(result_of(reveal, r) for r in doc["results"]),
        session,
    )


def model_of(d: Mapping[str, Any]) -> Model:
    return Model(
        id=str(d["id"]),
        digest=str(d["digest"]),
        owner=str(d["owner"]),
        name=d.get("name"),
        owners=tuple(d["owners"]),
        features=tuple(Feature(f["name"], f["owner"], int(f["bins"])) for f in d["features"]),
        reveal=tuple(d["reveal"]),
        modes=tuple(d["modes"]),
    )


def job_of(d: Mapping[str, Any]) -> BatchJob:
    m = d["model"]
    return BatchJob(
        id=str(d["id"]),
        state=str(d["state"]),
        applicants=int(d["applicants"]),
        reveal=str(d["reveal"]),
        model=ModelRef(str(m["id"]), str(m["digest"])),
        message=str(d.get("message") or ""),
        result=d.get("result"),
        error=d.get("error"),
    )
