"""Each API call once, as data: what to send and how to read the answer. `Client` and
`AsyncClient` only perform them (sync or async), so the two cannot drift apart."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from mpc_credit.client import results as res

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    accept: tuple[int, ...] = ()  # error statuses `parse` reads itself (readyz's 503)


def decisions(
    applicants: Iterable[str], reveal: str, model: str | None, mode: str | None
) -> Call[res.Decisions]:
    body: dict[str, Any] = {"applicants": list(applicants), "reveal": reveal}
    if model is not None:
        body["model"] = model
    if mode is not None:
        body["mode"] = mode
    return Call(
        "POST",
        "/v1/decisions",
        lambda r: res.decisions_of(reveal, r.json(), r.headers.get("x-session-id")),
        json=body,
    )


def models() -> Call[list[res.Model]]:
    return Call("GET", "/v1/models", lambda r: [res.model_of(m) for m in r.json()["models"]])


def model(model_id: str) -> Call[res.Model]:
    return Call("GET", f"/v1/models/{_segment(model_id)}", lambda r: res.model_of(r.json()))


def submit_batch(
    applicants: Iterable[str], reveal: str, model: str | None, mode: str | None
) -> Call[res.BatchJob]:
    lines = "".join(json.dumps({"applicant_id": a}) + "\n" for a in applicants)
    params = {"reveal": reveal}
    if model is not None:
        params["model"] = model
    if mode is not None:
        params["mode"] = mode
    return Call(
        "POST",
        "/v1/batches",
        lambda r: res.job_of(r.json()),
        params=params,
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )


def batch(job_id: str) -> Call[res.BatchJob]:
    return Call("GET", f"/v1/batches/{_segment(job_id)}", lambda r: res.job_of(r.json()))


def batch_result(job_id: str) -> Call[str]:
    return Call("GET", f"/v1/batches/{_segment(job_id)}/result", lambda r: r.text)


def ready() -> Call[res.Readiness]:
    def parse(r: httpx.Response) -> res.Readiness:
        d = r.json()
        if r.status_code == 200:
            return res.Readiness(True, "ready", d.get("party"))
        return res.Readiness(False, str(d.get("detail", "")))

    return Call("GET", "/readyz", parse, accept=(503,))


def health() -> Call[bool]:
    return Call("GET", "/healthz", lambda r: r.json().get("status") == "ok")


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda r: r.text)


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
