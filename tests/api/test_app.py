"""The app's parts and its behaviour in process, over a stub daemon (no MPC): uploads, tokens,
rate limits, the error mapping, routes and problems."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest

from mpc_credit.api.problems import Problem, from_error, reason_label
from mpc_credit.api.ratelimit import RateLimiter
from mpc_credit.api.tokens import TokenStore, create_token, read_clients
from mpc_credit.api.upload import CSV, NDJSON, TEXT, media_type, parse_ids
from mpc_credit.client import AsyncClient, Reason, ReasonsResult, UnavailableError
from mpc_credit.consortium import reasons
from mpc_credit.errors import RefusedError, SessionError, TimedOutError, UsageError
from tests.api.stub import auth, stub_app

# ---------------------------------------------------------------- uploads


def test_uploads_in_three_formats() -> None:
    assert parse_ids(b"applicant_id\r\nA1\r\n\r\n A2 \r\n", CSV) == ["A1", "A2"]
    assert parse_ids(b"\xef\xbb\xbfA1\n\nA2\n", TEXT) == ["A1", "A2"]
    assert parse_ids(b'{"applicant_id": "A1"}\n\n{"applicant_id":"A2"}', NDJSON) == ["A1", "A2"]
    assert media_type("text/csv; charset=utf-8") == CSV
    assert media_type("application/jsonl") == NDJSON


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        (b"id\nA1\n", CSV, "header"),
        (b"applicant_id,x\nA1,2\n", CSV, "header"),
        (b"applicant_id\nA1,2\n", CSV, "line 2: expected one column"),
        (b"A1\nA1\n", TEXT, "line 2: applicant 'A1' listed twice (line 1)"),
        (b"A1\n" + b"B" * 65 + b"\n", TEXT, "line 2"),
        (b"A\x01\n", TEXT, "line 1"),
        (b"\n\n", TEXT, "no applicant ids"),
        (b"\xff", TEXT, "UTF-8"),
        (b'{"applicant_id": "A1", "x": 1}\n', NDJSON, "line 1"),
        (b'["A1"]\n', NDJSON, "line 1"),
        (b'{"applicant_id": ""}\n', NDJSON, "line 1"),
        (b'{"applicant_id": "A1"\n', NDJSON, "line 1"),
    ],
)
def test_bad_uploads_name_the_line(body: bytes, kind: str, words: str) -> None:
    with pytest.raises(Problem) as exc:
        parse_ids(body, kind)
    assert exc.value.status == 422 and words in exc.value.detail


def test_an_unknown_media_type_is_415() -> None:
    for header in (None, "application/json", "multipart/form-data; boundary=x"):
        with pytest.raises(Problem) as exc:
            media_type(header)
        assert exc.value.status == 415


# ---------------------------------------------------------------- tokens and limits


def test_tokens_are_hashed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "serve-tokens.json"
    store = TokenStore(path)
    assert store.by_token("anything") is None
    a = create_token(path, "a", ["decision"])
    b = create_token(path, "b", ["score", "pd"], 60)
    assert path.stat().st_mode & 0o777 == 0o600
    store.refresh(force=True)
    got_a, got_b = store.by_token(a), store.by_token(b)
    assert got_a is not None and got_b is not None
    assert got_a.name == "a" and got_b.reveal == ("score", "pd")
    assert got_b.rate_per_minute == 60
    assert store.by_token(a[:-1]) is None and store.by_token("") is None
    assert store.by_token(a + "x" * 300) is None
    assert store.by_name("b") == got_b and store.by_name("c") is None
    with pytest.raises(UsageError):
        create_token(path, "a", ["decision"])
    with pytest.raises(UsageError):
        create_token(path, "bad name", ["decision"])
    with pytest.raises(UsageError):
        create_token(path, "c", ["everything"])


def test_a_running_server_sees_a_new_client(tmp_path: Path) -> None:
    path = tmp_path / "serve-tokens.json"
    create_token(path, "a", ["decision"])
    store = TokenStore(path)
    token = create_token(path, "b", ["decision"])
    store.refresh(now=1e12)  # past the once-a-second check
    assert store.by_token(token) is not None


def test_a_broken_edit_keeps_the_clients_read_before(tmp_path: Path) -> None:
    path = tmp_path / "serve-tokens.json"
    token = create_token(path, "a", ["decision"])
    store = TokenStore(path)
    path.write_text("{ half written")
    store.refresh(now=1e12)
    assert store.by_token(token) is not None
    path.unlink()  # no file: no client
    store.refresh(now=2e12)
    assert store.by_token(token) is None


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"format": "x", "clients": []}',
        '{"format": "mpc-credit/serve-tokens@1", "clients": [{"name": "a"}]}',
        '{"format": "mpc-credit/serve-tokens@1", "clients": [], "more": 1}',
    ],
)
def test_a_broken_token_file_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "serve-tokens.json"
    path.write_text(text)
    with pytest.raises(UsageError) as exc:
        read_clients(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_the_rate_limit_refills() -> None:
    lim = RateLimiter()
    assert [lim.take("a", 2, now=0.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert lim.take("a", 2, now=0.0) == pytest.approx(30.0)
    assert lim.take("a", 2, now=30.0) == 0.0
    assert lim.take("b", 2, now=0.0) == 0.0  # per client


# ---------------------------------------------------------------- error mapping


def test_errors_map_to_statuses() -> None:
    quota = from_error(RefusedError("x", reasons.DAILY_BUDGET))
    assert (quota.status, quota.extra["reason"]) == (429, "daily budget exceeded")
    assert from_error(RefusedError("x", reasons.NOT_ALLOWED)).status == 403
    odd = from_error(RefusedError("x", "a long text a malicious party made up"))
    assert (odd.status, odd.extra["reason"]) == (403, "other")
    assert from_error(RefusedError("x")).extra["reason"] == "unknown"
    assert from_error(TimedOutError("x")).status == 504
    assert from_error(SessionError("x")).status == 502
    assert from_error(UsageError("x")).status == 422
    assert reason_label("privacy budget exceeded (its budget: epsilon 1)") == (
        "privacy budget exceeded"
    )


# ---------------------------------------------------------------- the app in process


def _client(app: object, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://testserver",
        headers=auth(token) if token else {},
    )


async def test_routes_over_the_stub_daemon(tmp_path: Path) -> None:
    with stub_app(tmp_path) as (app, token):
        async with _client(app, token) as c:
            r = await c.post("/v1/decisions", json={"applicants": ["A0001"], "reveal": "reasons"})
            assert r.status_code == 200
            assert r.json()["results"] == [
                {
                    "applicant_id": "A0001",
                    "decision": "approve",
                    **{f"reason_{i}_{x}": "" for i in range(1, 5) for x in ("code", "text")},
                }
            ]
            assert (await c.get("/readyz")).json()["status"] == "ready"
            r = await c.post(
                "/v1/batches?reveal=score",
                content=b"A0001\nA0002\n",
                headers={"Content-Type": "text/plain"},
            )
            assert r.status_code == 202
            job = r.json()["id"]
            for _ in range(100):
                state = (await c.get(f"/v1/batches/{job}")).json()
                if state["state"] == "done":
                    break
                await asyncio.sleep(0.02)
            assert state["message"] == "stub: scored"
            res = await c.get(state["result"])
            assert res.text == "applicant_id,score\nA0001,520\nA0002,520\n"
            for path in ("/v1/batches/" + "0" * 32, "/v1/batches/x/result", "/nowhere"):
                r = await c.get(path)
                assert r.status_code == 404
                assert r.headers["content-type"] == "application/problem+json"
            r = await c.get("/v1/decisions")
            assert r.status_code == 405 and r.json()["type"].endswith("method-not-allowed")
            doc = (await c.get("/openapi.json")).json()
            assert {"/v1/decisions", "/v1/batches", "/v1/models", "/readyz"} <= set(doc["paths"])
            assert "HTTPBearer" in doc["components"]["securitySchemes"]
            assert (await c.get("/docs")).status_code == 200


async def test_without_the_daemon(tmp_path: Path) -> None:
    with stub_app(tmp_path, daemon=False) as (app, token):
        async with _client(app, token) as c:
            r = await c.get("/readyz")
            assert r.status_code == 503 and "not running" in r.json()["detail"]
            r = await c.post("/v1/decisions", json={"applicants": ["A0001"]})
            assert r.status_code == 503 and r.json()["type"].endswith("daemon-unavailable")
            metrics = (await c.get("/metrics")).text
            assert "mpc_credit_daemon_up 0.0" in metrics
        async with AsyncClient(
            "http://testserver", token, transport=httpx.ASGITransport(app=app)
        ) as api:
            assert not (await api.ready()).ready
            with pytest.raises(UnavailableError) as exc:
                await api.decide("A0001")
            assert exc.value.status == 503 and "not running" in exc.value.detail


async def test_reasons_as_codes_and_statements_in_json_csv_and_the_client(tmp_path: Path) -> None:
    with stub_app(tmp_path) as (app, token):
        async with _client(app, token) as c:
            body = {"applicants": ["A0002", "A0001"], "reveal": "reasons"}
            r = await c.post("/v1/decisions", json=body)
            assert r.status_code == 200, r.text
            declined = r.json()["results"][0]
            assert declined == {
                "applicant_id": "A0002",
                "decision": "decline",
                "reason_1_code": "R02",
                "reason_1_text": "Duration of credit too long",
                "reason_2_code": "R07",
                "reason_2_text": "Length of employment too short",
                **{f"reason_{i}_{x}": "" for i in (3, 4) for x in ("code", "text")},
            }
        async with AsyncClient(
            "http://testserver", token, transport=httpx.ASGITransport(app=app)
        ) as api:
            out = await api.decisions(["A0002", "A0001"], reveal="reasons")
            got = out.results[0]
            assert isinstance(got, ReasonsResult) and not got.approved
            assert got.reasons == (
                Reason("R02", "Duration of credit too long"),
                Reason("R07", "Length of employment too short"),
            )
            assert out.results[1].reasons == ()  # type: ignore[union-attr]


async def test_the_inflight_limit_holds_calls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More concurrent calls than slots: all answered, never more than `max_inflight` at the
    daemon at once."""
    from mpc_credit.api import gateway

    real = gateway.score_request
    now = peak = 0

    async def slow(*a: object, **kw: object) -> object:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        try:
            await asyncio.sleep(0.02)
            return await real(*a, **kw)  # type: ignore[arg-type]
        finally:
            now -= 1

    monkeypatch.setattr(gateway, "score_request", slow)
    with stub_app(tmp_path, max_inflight=2) as (app, token):
        async with _client(app, token) as c:
            codes = await asyncio.gather(
                *(c.post("/v1/decisions", json={"applicants": [f"A{i:04d}"]}) for i in range(1, 13))
            )
    assert [r.status_code for r in codes] == [200] * 12 and peak == 2


def test_the_access_log_is_private(tmp_path: Path) -> None:
    from mpc_credit.api.access_log import AccessLog

    log = AccessLog(tmp_path / "a.jsonl")
    log.write(client="x", status=200)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "a.jsonl").read_text())["client"] == "x"
    AccessLog(tmp_path / "missing" / "a.jsonl").write(client="x")  # logged, not raised
    assert not os.path.exists(tmp_path / "missing")
