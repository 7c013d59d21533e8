"""`mpc-credit serve` end to end: three real daemons, the real broker, the server as a
subprocess on loopback, plain HTTP calls and the Python client.

One consortium and one server serve the module; the last test stops a party's daemon.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mpc_credit.client import AsyncClient, Client, DecisionResult, ReasonsResult, RefusedError
from tests.api.serving import (
    Server,
    auth,
    cli,
    consortium,
    make_token,
    reference_records,
    wait_ready,
)
from tests.cluster import Cluster, csv_rows

PER_APPLICANT = 12  # the policy's scorings of one applicant per 24 h (one test reaches it)
BANK_IDS = list(csv_rows("bank"))
PROBLEM = "application/problem+json"


@dataclass
class Api:
    cluster: Cluster
    server: Server
    full: str  # a token for every reveal policy
    decider: str  # decision only
    slow: str  # decision, one call per minute

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def config(self) -> Path:
        return self.cluster.config("bank")

    def post(self, body: object, token: str | None = None, **kw: object) -> httpx.Response:
        return httpx.post(
            self.url + "/v1/decisions",
            json=body,
            headers=auth(token or self.full),
            timeout=60,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    with consortium(root, per_applicant_daily=PER_APPLICANT, daily_budget=1_000_000) as c:
        cfg = c.config("bank")
        full = make_token(cfg, "full", "score,decision,reasons,pd", "--rate", "100000")
        decider = make_token(cfg, "decider", "decision")
        slow = make_token(cfg, "slow", "decision", "--rate", "1")
        server = Server(cfg)
        try:
            wait_ready(server.url)
            yield Api(c, server, full, decider, slow)
        finally:
            code = server.stop()
            assert code == 0, server.proc.stderr.read().decode() if server.proc.stderr else ""


def _declined_and_approved() -> list[str]:
    """Two declined applicants and one approved: every reasons field has content."""
    recs = reference_records(BANK_IDS[400:600], "decision")  # ids no other test uses
    declined = [r["applicant_id"] for r in recs if r["decision"] == "decline"][:2]
    approved = [r["applicant_id"] for r in recs if r["decision"] == "approve"][:1]
    return [str(a) for a in declined + approved]


MIXED = _declined_and_approved()
FIELDS = {
    "score": {"applicant_id", "score"},
    "decision": {"applicant_id", "decision"},
    "reasons": {"applicant_id", "decision"}
    | {f"reason_{i}_{x}" for i in range(1, 5) for x in ("code", "text")},
    "pd": {"applicant_id", "score", "pd"},
}


def test_one_decision_equals_the_cli_and_the_reference(api: Api) -> None:
    r = api.post({"applicants": ["A0191"], "reveal": "decision"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"model", "results"}
    assert doc["model"]["id"] == f"{api.cluster.cons.models[0].id}@1"  # ID@VERSION
    assert doc["model"]["digest"] == api.cluster.cons.models[0].digest
    assert doc["results"] == reference_records(["A0191"], "decision")
    done = cli("score", "--config", str(api.config), "--applicant", "A0191")
    done = cli(
        "score", "--config", str(api.config), "--applicant", "A0191", "--reveal", "decision",
        "--json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == doc["results"]
    sid = r.headers["x-session-id"]
    assert any(rec.get("session") == sid for rec in api.cluster.audit("bank"))


@pytest.mark.parametrize("reveal", list(FIELDS))
def test_every_reveal_policy(api: Api, reveal: str) -> None:
    r = api.post({"applicants": MIXED, "reveal": reveal})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [set(x) for x in results] == [FIELDS[reveal]] * len(MIXED)
    assert results == reference_records(MIXED, reveal)
    if reveal == "reasons":
        assert results[0]["reason_1_code"] and results[0]["decision"] == "decline"
        assert results[0]["reason_1_text"]


def _is_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert {"type", "title", "status", "detail"} <= set(doc) and doc["status"] == status
    assert "Traceback" not in r.text
    return doc


def test_bad_credentials_are_401(api: Api) -> None:
    body = {"applicants": ["A0191"], "reveal": "decision"}
    for headers in (
        {"Authorization": "Bearer mpcc_not-a-token"},
        {"Authorization": f"Basic {api.full}"},
        {},
    ):
        r = httpx.post(api.url + "/v1/decisions", json=body, headers=headers)
        _is_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    _is_problem(httpx.get(api.url + "/v1/models", headers=auth("x" * 5000)), 401)


def test_a_reveal_the_client_was_not_given_is_403(api: Api) -> None:
    doc = _is_problem(api.post({"applicants": ["A0191"], "reveal": "score"}, api.decider), 403)
    assert "may not request reveal policy 'score'" in str(doc["detail"])
    assert api.post({"applicants": ["A0191"], "reveal": "decision"}, api.decider).status_code == 200


BAD_BODIES = {
    "extra field": ({"applicants": ["A0191"], "reveal": "decision", "x": 1}, 422),
    "long id": ({"applicants": ["A" * 65]}, 422),
    "control character": ({"applicants": ["A01\n91"]}, 422),
    "empty id": ({"applicants": [""]}, 422),
    "no ids": ({"applicants": []}, 422),
    "too many": ({"applicants": [f"X{i}" for i in range(1001)]}, 422),
    "twice": ({"applicants": ["A0191", "A0191"]}, 422),
    "number": ({"applicants": [191]}, 422),
    "reveal": ({"applicants": ["A0191"], "reveal": "everything"}, 422),
    "not an object": (["A0191"], 422),
    "unknown model": ({"applicants": ["A0191"], "model": "nope"}, 422),
    "unknown applicant": ({"applicants": ["NOT-AN-APPLICANT"]}, 422),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_invalid_bodies_are_4xx_problems(api: Api, case: str) -> None:
    body, status = BAD_BODIES[case]
    _is_problem(api.post(body), status)


def test_malformed_and_oversized_bodies(api: Api) -> None:
    h = {**auth(api.full), "Content-Type": "application/json"}
    url = api.url + "/v1/decisions"
    _is_problem(httpx.post(url, content=b'{"applicants": ["A0191"', headers=h), 400)
    _is_problem(httpx.post(url, content=b"\xff\xfe", headers=h), 400)
    big = json.dumps({"applicants": ["A" * 60] * 20_000}).encode()  # 1.3 MB
    _is_problem(httpx.post(url, content=big, headers=h), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"applicants": ['
        for _ in range(40):
            yield (b'"' + b"B" * 60 + b'",') * 500
        yield b'"x"]}'

    _is_problem(httpx.post(url, content=chunks(), headers=h), 413)
    h["Content-Type"] = "text/plain"
    doc = _is_problem(
        httpx.post(api.url + "/v1/batches", content=b"x" * (17 << 20), headers=h), 413
    )
    assert "16777216" in str(doc["detail"])


def test_a_consortium_refusal_keeps_its_reason(api: Api) -> None:
    """The daemons' per-applicant limit: 429 with kind refused and the public category."""
    aid = BANK_IDS[-1]
    for _ in range(PER_APPLICANT):
        assert api.post({"applicants": [aid]}).status_code == 200
    doc = _is_problem(api.post({"applicants": [aid]}), 429)
    assert doc["kind"] == "refused" and doc["reason"] == "per-applicant limit reached"


def test_models(api: Api) -> None:
    r = httpx.get(api.url + "/v1/models", headers=auth(api.decider))
    assert r.status_code == 200
    (m,) = r.json()["models"]
    info = api.cluster.cons.models[0]  # the consortium file's model: version 1, the champion
    assert (m["id"], m["digest"], m["owner"]) == (f"{info.id}@1", info.digest, info.owner)
    assert (m["name"], m["version"], m["status"]) == (info.id, 1, "champion")
    assert m["modes"] == ["shared", "secret"]
    assert m["owners"] == ["bank", "bureau", "telco"]
    assert m["reveal"] == ["score", "decision", "reasons", "pd"]
    assert len(m["features"]) == 20 and {"name", "owner", "bins"} == set(m["features"][0])
    one = httpx.get(api.url + f"/v1/models/{info.id}", headers=auth(api.decider))
    assert one.json() == m
    _is_problem(httpx.get(api.url + "/v1/models/nope", headers=auth(api.decider)), 404)


def test_batch_result_equals_the_cli(api: Api, tmp_path: Path) -> None:
    ids = BANK_IDS[:-1]  # the last one is at its per-applicant limit
    upload = "applicant_id\n" + "".join(f"{a}\n" for a in ids)
    r = httpx.post(
        api.url + "/v1/batches",
        params={"reveal": "decision"},
        content=upload.encode(),
        headers={**auth(api.full), "Content-Type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/batches/{job['id']}"
    assert job["applicants"] == len(ids) and job["state"] in ("queued", "running")
    end = time.monotonic() + 120
    while job["state"] in ("queued", "running") and time.monotonic() < end:
        time.sleep(0.2)
        job = httpx.get(api.url + f"/v1/batches/{job['id']}", headers=auth(api.full)).json()
    assert job["state"] == "done", job["error"]
    got = httpx.get(api.url + job["result"], headers=auth(api.full))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    out = tmp_path / "cli.csv"
    done = cli(
        "score", "--config", str(api.config), "--batch", str(tmp_path / "ids.txt"),
        "--reveal", "decision", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert got.text == out.read_text()
    # another client does not see the job
    other = httpx.get(api.url + f"/v1/batches/{job['id']}", headers=auth(api.decider))
    _is_problem(other, 404)


def test_batch_uploads_are_checked(api: Api) -> None:
    url = api.url + "/v1/batches"

    def post(body: bytes, ctype: str, **params: str) -> httpx.Response:
        h = {**auth(api.full), "Content-Type": ctype}
        return httpx.post(url, content=body, headers=h, params=params or {"reveal": "decision"})

    _is_problem(post(b"A0191\n", "application/pdf"), 415)
    _is_problem(post(b"id\nA0191\n", "text/csv"), 422)
    _is_problem(post(b"applicant_id\nA0191\nA0191\n", "text/csv"), 422)
    _is_problem(post(b'{"applicant_id": 5}\n', "application/x-ndjson"), 422)
    _is_problem(post(b"A0191\n", "text/plain", reveal="all"), 422)
    _is_problem(post(b"A0191\n", "text/plain", reveal="decision", extra="1"), 422)
    h = {**auth(api.decider), "Content-Type": "text/plain"}
    _is_problem(httpx.post(url, content=b"A0191\n", headers=h, params={"reveal": "pd"}), 403)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_parse_and_count(api: Api) -> None:
    def count(samples: dict, outcome: str, reveal: str) -> float:
        key = (
            "mpc_credit_api_requests_total",
            (("outcome", outcome), ("reveal", reveal), ("route", "/v1/decisions")),
        )
        return samples.get(key, 0.0)

    before = _samples(httpx.get(api.url + "/metrics").text)
    assert api.post({"applicants": ["A0922"], "reveal": "score"}).status_code == 200
    assert api.post({"applicants": ["A0922"], "reveal": "score"}, api.decider).status_code == 403
    r = httpx.get(api.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = _samples(r.text)
    assert count(after, "ok", "score") == count(before, "ok", "score") + 1
    assert (
        count(after, "reveal-not-allowed", "score")
        == count(before, "reveal-not-allowed", "score") + 1
    )
    refusals = ("mpc_credit_api_refusals_total", (("reason", "reveal not allowed for the client"),))
    assert after[refusals] >= 1
    assert after[("mpc_credit_daemon_up", ())] == 1
    assert after[("mpc_credit_daemon_parties_online", ())] == 3
    used = after[("mpc_credit_daemon_daily_budget_used", (("party", "bank"),))]
    left = after[("mpc_credit_daemon_daily_budget_left", (("party", "bank"),))]
    assert used > 0 and used + left == 1_000_000
    hist = ("mpc_credit_api_request_seconds_count", (("route", "/v1/decisions"),))
    assert after[hist] > before.get(hist, 0)


def test_the_access_log_names_the_client(api: Api) -> None:
    r = api.post({"applicants": ["A0755"], "reveal": "decision"}, api.decider)
    sid = r.headers["x-session-id"]
    log = api.config.parent / "serve-access.jsonl"
    assert log.stat().st_mode & 0o777 == 0o600
    end = time.monotonic() + 5  # the line is written once the response is sent
    while True:
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        found = [x for x in lines if x.get("session") == sid]
        if found or time.monotonic() > end:
            break
        time.sleep(0.05)
    (rec,) = found
    assert rec["client"] == "decider" and rec["via"] == "token" and rec["status"] == 200
    assert rec["reveal"] == "decision" and rec["applicants"] == 1
    assert "A0755" not in log.read_text()  # ids stay in the daemon's audit log
    assert any(x["client"] is None and x["status"] == 401 for x in lines)


def test_the_rate_limit_is_429(api: Api) -> None:
    assert api.post({"applicants": ["A0191"]}, api.slow).status_code == 200
    r = api.post({"applicants": ["A0191"]}, api.slow)
    doc = _is_problem(r, 429)
    assert doc["reason"] == "rate limit" and int(r.headers["retry-after"]) >= 1


def test_the_sync_client(api: Api) -> None:
    with Client(api.url, api.full) as c:
        assert c.health() and c.ready().ready
        d = c.decide("A0191")
        assert isinstance(d, DecisionResult)
        assert d.decision == reference_records(["A0191"], "decision")[0]["decision"]
        out = c.decisions(MIXED, "reasons")
        assert out.model.id == f"{api.cluster.cons.models[0].id}@1" and out.session
        assert all(isinstance(x, ReasonsResult) for x in out.results)
        ref = reference_records(MIXED, "reasons")
        assert [tuple((x.code, x.text) for x in r.reasons) for r in out.results] == [
            tuple(
                (r[f"reason_{i}_code"], r[f"reason_{i}_text"])
                for i in range(1, 5)
                if r[f"reason_{i}_code"]
            )
            for r in ref
        ]
        (m,) = c.models()
        assert c.model(m.id) == m and m.owners == ("bank", "bureau", "telco")
        job = c.wait_batch(c.submit_batch(BANK_IDS[:50], "score").id, timeout=60)
        rows = list(csv.reader(io.StringIO(c.batch_result(job.id))))
        assert rows[0] == ["applicant_id", "score"] and len(rows) == 51
    with Client(api.url, api.decider) as c, pytest.raises(Exception) as exc:
        c.decide("A0191", "pd")
    assert type(exc.value).__name__ == "ForbiddenError" and exc.value.status == 403  # type: ignore[attr-defined]


def test_the_async_client(api: Api) -> None:
    async def run() -> None:
        async with AsyncClient(api.url, api.full) as c:
            got = await asyncio.gather(*(c.decide(a, "pd") for a in MIXED))
            assert [(g.applicant_id, g.score) for g in got] == [
                (r["applicant_id"], r["score"]) for r in reference_records(MIXED, "pd")
            ]
            with pytest.raises(RefusedError) as exc:
                for _ in range(PER_APPLICANT + 1):
                    await c.decide(BANK_IDS[-1])
            assert exc.value.status == 429 and exc.value.reason == "per-applicant limit reached"

    asyncio.run(run())


def test_readyz_names_a_stopped_party(api: Api) -> None:
    """Last: stops telco's daemon (then restarts it)."""
    assert httpx.get(api.url + "/readyz").json()["status"] == "ready"
    api.cluster.daemons["telco"].terminate()
    assert api.cluster.wait("telco") == 0
    end = time.monotonic() + 15
    while True:
        r = httpx.get(api.url + "/readyz")
        if r.status_code == 503 or time.monotonic() > end:
            break
        time.sleep(0.1)
    doc = _is_problem(r, 503)
    assert "telco" in str(doc["detail"]) and "bank" not in str(doc["detail"])
    r = api.post({"applicants": ["A0191"]})
    assert r.status_code in (502, 503), r.text
    api.cluster.daemons.pop("telco")
    api.cluster.start("telco")
    wait_ready(api.url)
    assert api.post({"applicants": ["A0191"]}).status_code == 200
