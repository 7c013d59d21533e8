"""The API's request and response bodies (pydantic): the OpenAPI document is built from these.

Requests are strict: unknown fields are refused (`extra="forbid"`), strings are not coerced
from numbers, an applicant id is 1 to 64 printable characters (as on the control socket and
the broker), at most MAX_DECISION_IDS distinct ids per call. The result records carry the
field names of `mpc-credit score --json` for each reveal policy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from mpc_credit.api.settings import MAX_DECISION_IDS

Reveal = Literal["score", "decision", "reasons", "pd"]
Mode = Literal["shared", "secret"]


def _printable(v: str) -> str:
    if not v.isprintable():
        raise ValueError("must be printable characters (no control or line-break character)")
    return v


ApplicantId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, strict=True),
    AfterValidator(_printable),
]
ModelId = ApplicantId


def _distinct(ids: list[str]) -> list[str]:
    if len(set(ids)) != len(ids):
        raise ValueError("an applicant id is listed twice")
    return ids


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DecisionRequest(Strict):
    """Applicants to decide on now (one MPC session)."""

    applicants: Annotated[
        list[ApplicantId],
        Field(min_length=1, max_length=MAX_DECISION_IDS),
        AfterValidator(_distinct),
    ]
    reveal: Reveal = "decision"
    model: ModelId | None = Field(
        default=None, description="ID or ID@VERSION; default: the registry's champion"
    )
    mode: Mode = "shared"


class ModelRef(BaseModel):
    id: str = Field(description="the version the result came from, ID@VERSION")
    digest: str


class ScoreResult(BaseModel):
    applicant_id: str
    score: int


class DecisionResult(BaseModel):
    applicant_id: str
    decision: Literal["approve", "decline"]


ReasonCode = Annotated[
    str, Field(description="the model's reason code of the feature; empty when approved")
]
ReasonText = Annotated[
    str, Field(description="the model's adverse-action statement; empty when approved")
]


class ReasonsResult(BaseModel):
    """A decision with up to 4 reasons, costliest first, each a reason code and statement
    from the model (a feature without one in the model gives its name for both)."""

    applicant_id: str
    decision: Literal["approve", "decline"]
    reason_1_code: ReasonCode
    reason_1_text: ReasonText
    reason_2_code: ReasonCode
    reason_2_text: ReasonText
    reason_3_code: ReasonCode
    reason_3_text: ReasonText
    reason_4_code: ReasonCode
    reason_4_text: ReasonText


class PdResult(BaseModel):
    applicant_id: str
    score: int
    pd: float | None


Result = ScoreResult | DecisionResult | ReasonsResult | PdResult


class DecisionResponse(BaseModel):
    model: ModelRef
    results: list[Result] = Field(
        description="one record per applicant, in request order, fields as `score --json`: "
        "score: applicant_id, score; decision: applicant_id, decision; reasons: "
        "applicant_id, decision, reason_1_code, reason_1_text .. reason_4_code, reason_4_text "
        "(empty when approved); pd: "
        "applicant_id, score, pd"
    )


class Feature(BaseModel):
    name: str
    owner: str
    bins: int


class ModelInfo(BaseModel):
    id: str = Field(description="the version, ID@VERSION")
    digest: str
    owner: str = Field(description="the model owner")
    name: str = Field(description="the model's id, without its version")
    version: int
    status: str = Field(description="champion, challenger or candidate (in service)")
    owners: list[str] = Field(description="feature owners in model order")
    features: list[Feature]
    reveal: list[Reveal] = Field(description="reveal policies the consortium allows this party")
    modes: list[Mode] = Field(description="the modes this party's daemon serves it in now")


class ModelList(BaseModel):
    models: list[ModelInfo]


class BatchState(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    applicants: int
    reveal: Reveal
    model: ModelRef
    created: str
    finished: str | None = None
    message: str = Field(default="", description="the daemon's latest progress line")
    result: str | None = Field(default=None, description="the result CSV's URL once done")
    error: dict[str, object] | None = Field(default=None, description="problem details")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    party: str
    parties: list[str]


class ProblemDoc(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    kind: Literal["input", "refused", "failed", "timeout"] | None = None
    reason: str | None = None


def problem_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for these error statuses."""
    return {c: {"model": ProblemDoc, "content": {"application/problem+json": {}}} for c in codes}
