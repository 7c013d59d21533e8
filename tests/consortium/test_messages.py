"""Every control-plane parser against hostile input: random bytes, random JSON, mutated valid
messages. A parser raises only MessageError, accepts exactly what its schema allows (checked
against an independent oracle per kind below), and gives valid messages back unchanged."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_credit.consortium import reasons
from mpc_credit.consortium.control import ControlRequest, parse_control
from mpc_credit.consortium.fields import MessageError, clean_text
from mpc_credit.consortium.messages import (
    ACK,
    DONE,
    FAILED,
    PHASES,
    PRESENCE_LABEL,
    PROGRESS,
    REFUSE,
    REQUEST_LABEL,
    STATUS_LABEL,
    decode_presence,
    decode_request,
    decode_status,
    parse_request,
    parse_status,
    presence,
    status,
)
from mpc_credit.consortium.reasons import Refusal, public_reason
from mpc_credit.consortium.signing import sign
from mpc_credit.errors import DataError, ModelError, TimedOutError
from mpc_credit.jsonwire import encode
from tests.conftest import OWNERS
from tests.consortium.members import members

M = members()
CONS = M.cons
SID = "0123456789abcdef0123456789abcdef"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- oracles: each schema written out


def _hex(n: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and re.fullmatch(f"[0-9a-f]{{{n}}}", v) is not None


def _int(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and lo <= v <= hi


def _time(v: Any) -> bool:
    return type(v) is float and math.isfinite(v) and 0 <= v <= 1e11


def _ident(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 64 and v.isprintable()


def _model_id(v: Any) -> bool:  # a model id: mpc_credit.names' rule (it may name a file)
    return (
        isinstance(v, str)
        and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v) is not None
        and ".." not in v
    )


def _ids(most: int) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        good = isinstance(v, list) and 0 < len(v) <= most and all(_ident(a) for a in v)
        return good and len(set(v)) == len(v)

    return ok


def _text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 300


def _is(*values: Any) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in values


def _sig(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9+/]{86}==", v) is not None


def _safe_name(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", v) is not None


def request_schema(names: Callable[[Any], bool]) -> dict[str, Callable[[Any], bool]]:
    return {
        "type": _is("request"),
        "session": _hex(32),
        "requester": names,
        "receiver": names,
        "model_id": _model_id,
        "model_digest": _hex(64),
        "mode": _is("shared", "secret"),
        "reveal": _is("score", "decision", "reasons", "pd"),
        "ids": lambda v: v is None or _ids(100)(v),
        "batch_digest": _hex(64),
        "count": _int(1, 10**7),
        "deadline": _time,
        "nonce": _hex(32),
        "ts": _time,
        "sig": _sig,
    }


def fits(d: Any, schema: dict[str, Callable[[Any], bool]], optional: tuple[str, ...] = ()) -> bool:
    required = set(schema) - set(optional)
    if not isinstance(d, dict) or not required <= set(d) <= set(schema):
        return False
    return all(schema[k](v) for k, v in d.items())


PARTY = _is(*OWNERS)


def request_ok(d: Any, names: Callable[[Any], bool] = PARTY) -> bool:
    return fits(d, request_schema(names)) and (d["ids"] is None or len(d["ids"]) == d["count"])


STATUS_EXTRA = {
    ACK: {"port": _int(1, 65535)},
    REFUSE: {"reason": _text},
    PROGRESS: {"message": _text},
    DONE: {},
    FAILED: {"reason": _text, "kind": _is("input", "failed", "refused", "timeout")},
}


def status_ok(d: Any, party: str) -> bool:
    if not isinstance(d, dict) or d.get("phase") not in PHASES:
        return False
    base = {
        "type": _is("status"),
        "session": _is(SID),
        "party": _is(party),
        "phase": _is(*PHASES),
        "ts": _time,
        "sig": _sig,
    }
    return fits(d, {**base, **STATUS_EXTRA[d["phase"]]})


def presence_ok(d: Any, party: str) -> bool:
    schema = {
        "type": _is("presence"),
        "party": _is(party),
        "state": _is("online", "draining", "offline"),
        "ts": _time,
        "sig": _sig,
        "reason": _text,
        "pid": _int(OWNERS.index(party), OWNERS.index(party)),
        "host": lambda v: isinstance(v, str) and len(v) <= 253,
    }
    return fits(d, schema, optional=("reason", "pid", "host"))


def control_ok(d: Any) -> bool:
    if not isinstance(d, dict):
        return False
    if d.get("op") == "submit":
        return fits(d, {"op": _is("submit"), "ids": _ids(100_000), "request": request_ok_loose})
    timeout = d.get("timeout")
    score = {
        "op": _is("score"),
        "ids": _ids(100_000),
        "reveal": _is("score", "decision", "reasons", "pd"),
        "mode": _is("shared", "secret"),
        "model_id": lambda v: v is None or _model_id(v),
        "timeout": lambda v: type(v) in (int, float) and 0.001 <= v <= 86400,
    }
    return d == {"op": "status"} or (fits(d, score) and math.isfinite(timeout))


def request_ok_loose(d: Any) -> bool:
    return request_ok(d, _safe_name)


# ---------------------------------------------------------------- strategies

PRINTABLE = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
IDS = st.lists(st.text(PRINTABLE, min_size=1, max_size=64), min_size=1, max_size=100, unique=True)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
BOUNDARY: list[Any] = [
    *(True, False, 0, 1, -1, 12, 65535, 65536, 10**7, 10**7 + 1, 0.0, 1.0, 1e11, 2e11, -1.0),
    *(0.0009, 86400, 86400.5, "", "x" * 64, "x" * 65, "y" * 300, "z" * 301, "A" * 32, "a" * 32),
    *("0" * 64, "0" * 63, "\x1b[2J", "a\nb", None, [], {}, ["A1"], ["A1", "A1"], ["a"] * 101),
    *(["a"] * 100, [1], ["x" * 65], "bank", "telco", "mallory", "Bank", "shared", "secret"),
    *("score", "pd", "ack", "failed", "timeout", "online", "offline", "status", "submit", SID),
    *("request", "presence", "A" * 86 + "==", {"a": 1}),
]
VALUES = st.sampled_from(BOUNDARY) | JSON


@st.composite
def mutated(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with one to three fields dropped, added or given another value."""
    d = dict(body)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("drop", "add", "set", "set")))
        if op == "drop" and d:
            del d[draw(st.sampled_from(sorted(d)))]
        elif op == "add":
            d[draw(st.text(max_size=12))] = draw(VALUES)
        else:
            d[draw(st.sampled_from(sorted(body)))] = draw(VALUES)
    return d


def flipped(payload: bytes) -> st.SearchStrategy[bytes]:
    """`payload` with a few bytes replaced, inserted or deleted."""

    def edit(edits: list[tuple[int, int, str]]) -> bytes:
        b = bytearray(payload)
        for pos, byte, how in edits:
            i = pos % (len(b) + 1)
            if how == "insert":
                b[i:i] = bytes([byte])
            elif b and how == "delete":
                del b[i % len(b)]
            elif b:
                b[i % len(b)] = byte
        return bytes(b)

    edit_one = st.tuples(
        st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(("insert", "delete", "set"))
    )
    return st.lists(edit_one, min_size=1, max_size=4).map(edit)


def _body(payload: bytes) -> dict[str, Any]:
    return dict(json.loads(payload))


REQ = M.request(ids=["A0191", "A0192"])
REQ_BYTES = REQ.to_json()
STATUS_BYTES = {
    ACK: status(M.keys["bureau"], SID, "bureau", ACK, port=12108),
    REFUSE: status(M.keys["bureau"], SID, "bureau", REFUSE, reason="bureau: refused: x"),
    PROGRESS: status(M.keys["bureau"], SID, "bureau", PROGRESS, message="half way"),
    DONE: status(M.keys["bureau"], SID, "bureau", DONE),
    FAILED: status(M.keys["bureau"], SID, "bureau", FAILED, reason="b: x", kind="timeout"),
}
PRESENCE_BYTES = presence(M.keys["telco"], "telco", "online", pid=2, host="127.0.0.1")


def _status(payload: bytes) -> Any:
    return decode_status(payload, CONS, SID, "bureau")


def _presence(payload: bytes) -> Any:
    return decode_presence(payload, CONS, "telco")


PARSERS: dict[str, Callable[[bytes], Any]] = {
    "request": lambda p: decode_request(p, CONS),
    "status": _status,
    "presence": _presence,
    "control": parse_control,
}
ORACLES: dict[str, Callable[[Any], bool]] = {
    "request": request_ok,
    "status": lambda d: status_ok(d, "bureau"),
    "presence": lambda d: presence_ok(d, "telco"),
    "control": control_ok,
}


def accepted(kind: str, payload: bytes) -> bool:
    """Whether the parser accepts `payload`; it may raise nothing but MessageError."""
    try:
        PARSERS[kind](payload)
    except MessageError as exc:
        assert len(str(exc)) <= 120 and "\n" not in str(exc)
        return False
    return True


# ---------------------------------------------------------------- every parser, hostile input


@pytest.mark.parametrize("kind", list(PARSERS))
@SETTINGS
@given(payload=st.binary(max_size=300))
def test_random_bytes_are_refused(kind: str, payload: bytes) -> None:
    assert not accepted(kind, payload)


@pytest.mark.parametrize("kind", list(PARSERS))
@SETTINGS
@given(value=JSON)
def test_random_json_is_refused(kind: str, value: Any) -> None:
    assert not accepted(kind, encode(value))


ORIGINALS = {
    "request": REQ_BYTES,
    "status": STATUS_BYTES[FAILED],
    "presence": PRESENCE_BYTES,
    "control": ControlRequest("score", ids=("A1", "A2"), model_id="m", timeout=5.0).to_json(),
}


@pytest.mark.parametrize("kind", list(PARSERS))
@SETTINGS
@given(data=st.data())
def test_byte_edits_of_valid_messages_stay_within_the_schema(kind: str, data: Any) -> None:
    payload = data.draw(flipped(ORIGINALS[kind]))
    if accepted(kind, payload):
        assert ORACLES[kind](json.loads(payload))


@SETTINGS
@given(data=st.data())
def test_mutated_requests_are_accepted_exactly_when_in_the_schema(data: Any) -> None:
    d = data.draw(mutated(_body(REQ_BYTES)))
    payload = encode(d)
    if request_ok(d):
        assert decode_request(payload, CONS).body() == d
    else:
        assert not accepted("request", payload)


@pytest.mark.parametrize("phase", PHASES)
@SETTINGS
@given(data=st.data())
def test_mutated_status_reports_resigned_are_accepted_exactly_when_in_the_schema(
    phase: str, data: Any
) -> None:
    """Re-signed by the right party, so the schema alone decides."""
    d = sign(STATUS_LABEL, data.draw(mutated(_body(STATUS_BYTES[phase]))), M.keys["bureau"])
    if status_ok(d, "bureau"):
        got = _status(encode(d))
        assert (got.phase, got.ts, got.port) == (d["phase"], d["ts"], d.get("port"))
        assert got.reason == clean_text(d.get("reason", ""))
        assert got.message == clean_text(d.get("message", ""))
    else:
        assert not accepted("status", encode(d))


@SETTINGS
@given(data=st.data())
def test_mutated_presence_resigned_is_accepted_exactly_when_in_the_schema(data: Any) -> None:
    d = sign(PRESENCE_LABEL, data.draw(mutated(_body(PRESENCE_BYTES))), M.keys["telco"])
    if presence_ok(d, "telco"):
        got = _presence(encode(d))
        assert (got.state, got.ts, got.pid) == (d["state"], d["ts"], d.get("pid"))
    else:
        assert not accepted("presence", encode(d))


@pytest.mark.parametrize("op", ["score", "status", "submit"])
@SETTINGS
@given(data=st.data())
def test_mutated_control_requests_are_accepted_exactly_when_in_the_schema(
    op: str, data: Any
) -> None:
    base = {
        "score": ControlRequest("score", ids=("A1",), timeout=5.0),
        "status": ControlRequest("status"),
        "submit": ControlRequest("submit", ids=("A1", "B2"), request=REQ),
    }[op]
    d = data.draw(mutated(base.body()))
    if control_ok(d):
        got = parse_control(encode(d))
        assert got.op == d["op"] and list(got.ids) == d.get("ids", [])
    else:
        assert not accepted("control", encode(d))


def single_edits(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`body` with each field dropped, each set to each boundary value, one field added."""
    out = [{k: v for k, v in body.items() if k != key} for key in body]
    out += [{**body, key: value} for key in body for value in BOUNDARY]
    return [*out, {**body, "extra": 1}]


def test_every_single_field_edit_is_judged_as_the_schema_says() -> None:
    """Exhaustive where the random tests sample: each field against each boundary value."""
    cases: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]] = [
        ("request", _body(REQ_BYTES), dict),
        ("presence", _body(PRESENCE_BYTES), lambda d: sign(PRESENCE_LABEL, d, M.keys["telco"])),
        ("control", ControlRequest("score", ids=("A1",), timeout=5.0).body(), dict),
        ("control", ControlRequest("submit", ids=("A1",), request=REQ).body(), dict),
    ]
    cases += [
        ("status", _body(b), lambda d: sign(STATUS_LABEL, d, M.keys["bureau"]))
        for b in STATUS_BYTES.values()
    ]
    for kind, body, resign in cases:
        for edit in single_edits(body):
            d = resign(edit)
            assert accepted(kind, encode(d)) == ORACLES[kind](d), (kind, d)


# ---------------------------------------------------------------- valid messages round-trip


@SETTINGS
@given(
    ids=IDS,
    inline=st.booleans(),
    reveal=st.sampled_from(("score", "decision", "reasons", "pd")),
    mode=st.sampled_from(("shared", "secret")),
    timeout=st.floats(0.5, 3600),
)
def test_valid_requests_round_trip(
    ids: list[str], inline: bool, reveal: str, mode: str, timeout: float
) -> None:
    req = M.request(ids=ids, inline=inline, reveal=reveal, mode=mode, timeout=timeout)
    assert decode_request(req.to_json(), CONS) == req
    assert parse_request(req.to_json()) == req


@SETTINGS
@given(
    ids=st.lists(
        st.text(PRINTABLE, min_size=1, max_size=64), min_size=1, max_size=300, unique=True
    ),
    model_id=st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
    timeout=st.floats(0.001, 86400),
)
def test_valid_control_requests_round_trip(
    ids: list[str], model_id: str | None, timeout: float
) -> None:
    ids = list(dict.fromkeys(ids))
    for req in (
        ControlRequest("score", ids=tuple(ids), model_id=model_id, timeout=timeout),
        ControlRequest("submit", ids=tuple(ids), request=REQ),
        ControlRequest("status"),
    ):
        assert parse_control(req.to_json()) == req


@SETTINGS
@given(reason=st.text(max_size=400), party=st.sampled_from(OWNERS))
def test_valid_status_and_presence_round_trip(reason: str, party: str) -> None:
    got = decode_status(
        status(M.keys[party], SID, party, FAILED, reason=reason, kind="failed"), CONS, SID, party
    )
    assert got.reason == clean_text(reason) and got.kind == "failed"
    assert parse_status(status(M.keys[party], SID, party, DONE), CONS, SID, party) == {
        "type": "status",
        "session": SID,
        "party": party,
        "phase": DONE,
        "ts": pytest.approx(got.ts, abs=60),
    }
    off = decode_presence(presence(M.keys[party], party, "offline", reason=reason), CONS, party)
    assert off.state == "offline" and off.reason == clean_text(reason)


# ---------------------------------------------------------------- the attacks of issue 7


def test_the_request_attacks_are_refused() -> None:
    body = _body(REQ_BYTES)
    text = REQ_BYTES.decode()
    attacks = {
        "count Infinity": text.replace('"count":2', '"count":Infinity'),
        "count 1e999": text.replace('"count":2', '"count":1e999'),
        "ts NaN": re.sub(r'"ts":[0-9.e+]+', '"ts":NaN', text),
        "100,000 deep": "[" * 100_000 + "]" * 100_000,
        "30,000 deep": '{"a":' + "[" * 30_000 + "]" * 30_000 + "}",
        "count bool": encode({**body, "count": True}),
        "count 1, 150 ids": encode({**body, "count": 1, "ids": [f"X{i}" for i in range(150)]}),
        "count 1, 2 ids": encode({**body, "count": 1}),
        "an id twice": encode({**body, "ids": ["A0191", "A0191"]}),
        "10 MB field": encode({**body, "model_id": "x" * 10_000_000}),
        "unknown field": encode({**body, "extra": 1}),
        "missing field": encode({k: v for k, v in body.items() if k != "nonce"}),
        "int ts": encode({**body, "ts": 1_700_000_000}),
        "id with a newline": encode({**body, "ids": ["A0191\n", "B"]}),
    }
    for what, payload in attacks.items():
        with pytest.raises(MessageError) as err:
            decode_request(payload, CONS)
        assert len(str(err.value)) < 120, what
        assert parse_request(payload if isinstance(payload, bytes) else payload.encode()) is None


def test_an_error_never_quotes_the_payload() -> None:
    body = _body(REQ_BYTES)
    for payload in (
        encode({**body, "\x1b[2J" + "k" * 5000: 1}),
        encode({**body, "model_digest": "SECRET-VALUE"}),
        encode({**body, "requester": "eve\nINFO forged log line"}),
    ):
        with pytest.raises(MessageError) as err:
            decode_request(payload, CONS)
        message = str(err.value)
        assert "SECRET" not in message and "\x1b" not in message and "forged" not in message
        assert len(message) < 100


def test_a_forged_offline_is_refused_and_a_genuine_one_accepted() -> None:
    unsigned = encode({"type": "presence", "party": "bank", "state": "offline", "ts": 1.0e9})
    by_telco = presence(M.keys["telco"], "bank", "offline", reason="connection lost")
    old_form = encode({"party": "bank", "state": "offline", "ts": 1.0e9})  # the old unsigned form
    for forged in (unsigned, by_telco, old_form, b"", b"offline"):
        with pytest.raises(MessageError):
            decode_presence(forged, CONS, "bank")
    genuine = presence(M.keys["bank"], "bank", "offline", reason="connection lost")
    assert decode_presence(genuine, CONS, "bank").state == "offline"
    with pytest.raises(MessageError, match="not the party of the topic"):
        decode_presence(genuine, CONS, "telco")  # bank's own message replayed on telco's topic
    with pytest.raises(MessageError, match="outside the consortium"):
        decode_presence(genuine, CONS, "mallory")


def test_a_status_must_be_signed_by_the_party_of_the_topic_for_the_session_of_the_topic() -> None:
    good = STATUS_BYTES[ACK]
    assert _status(good).port == 12108
    with pytest.raises(MessageError, match="not signed by bank"):
        decode_status(
            encode({**_body(good), "party": "bank"}), CONS, SID, "bank"
        )  # bureau's signature, bank's name
    with pytest.raises(MessageError, match="session of the topic"):
        decode_status(good, CONS, "f" * 32, "bureau")
    as_request = sign(REQUEST_LABEL, _body(good), M.keys["bureau"])  # another label
    with pytest.raises(MessageError, match="not signed"):
        _status(encode(as_request))


def test_text_from_other_parties_is_stripped_of_control_characters() -> None:
    hostile = "ok\x1b[2J\x1b]0;owned\x07 \x9b31m\u202eevil\x00\r\nnext\ttab\x7f"
    assert clean_text(hostile) == "ok 31mevil  next tab"
    raw = sign(
        STATUS_LABEL,
        {**_body(STATUS_BYTES[PROGRESS]), "message": hostile},
        M.keys["bureau"],
    )
    assert _status(encode(raw)).message == "ok 31mevil  next tab"
    assert clean_text("x" * 1000, 300) == "x" * 300


def test_long_reasons_are_cut_by_the_sender_so_the_others_accept_them() -> None:
    payload = status(M.keys["bank"], SID, "bank", FAILED, reason="r" * 5000, kind="failed")
    assert decode_status(payload, CONS, SID, "bank").reason == "r" * 300


def test_the_control_socket_takes_large_batches_within_its_own_limit() -> None:
    ids = tuple(f"APPLICANT-{i:08d}-" + "x" * 40 for i in range(100_000))
    req = ControlRequest("score", ids=ids, timeout=60.0)
    assert len(req.to_json()) > 6_000_000
    assert parse_control(req.to_json()).ids == ids
    with pytest.raises(MessageError, match="1 to 100000 ids"):
        parse_control(ControlRequest("score", ids=(*ids, "one more")).to_json())
    with pytest.raises(MessageError, match="over the limit"):
        parse_control(b" " * (17 * 1024 * 1024))


# ---------------------------------------------------------------- failures say why, not what


class Abort(Exception):
    """Like the daemon's session abort: a message and a kind, no type of its own."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


def _raised(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception:
            raise outer from None  # the daemon's habit: the cause hidden, still its context
    except Exception as exc:
        return exc


def test_public_reasons_carry_a_category_and_the_party_only() -> None:
    cell = DataError("/srv/telco/applicants.csv: row 17, column 'income': '12x4' is not a number")
    cases = {
        "telco: input error in its data file": cell,
        "telco: input error in its model file": ModelError("/srv/m.json: bad bin '7'"),
        "telco: MPC link lost": ConnectionResetError("peer 10.0.0.7:12100 reset"),
        "telco: deadline passed": TimedOutError("at 12:00:01 while computing"),
        "telco: session failed": Abort("party telco: something 'secret'"),
        "telco: input error": Abort("applicant 'A0191' is not in telco's file", "input"),
        "telco: internal error": KeyError("A0191"),
    }
    for expected, error in cases.items():
        assert public_reason(error, "telco") == expected
    wrapped = _raised(Abort(f"party telco: {cell}"), cell)
    assert public_reason(wrapped, "telco") == "telco: input error in its data file"
    refusal = Refusal("'bank' has had 400 applicants scored; ...", reasons.DAILY_BUDGET)
    assert public_reason(refusal, "bank") == "bank: refused: daily budget exceeded"
    assert public_reason("free text with a value 12x4", "bank") == "bank: session failed"


def test_a_status_carries_its_senders_audit_head_strictly_parsed() -> None:
    head = (57, "ab" * 32)
    payload = status(M.keys["bureau"], SID, "bureau", DONE, head=head)
    assert _body(payload)["head"] == [57, "ab" * 32]
    assert _status(payload).head == head and _status(payload).as_dict()["head"] == head
    assert _status(STATUS_BYTES[DONE]).head is None  # an older party's report: no head
    for bad in (
        [57],
        [57, "ab" * 32, 1],
        [-1, "ab" * 32],
        [True, "ab" * 32],
        [2**60, "ab" * 32],
        [57.0, "ab" * 32],
        [57, "AB" * 32],
        [57, "ab" * 31],
        {"seq": 57},
        "57",
    ):
        forged = sign(STATUS_LABEL, {**_body(STATUS_BYTES[DONE]), "head": bad}, M.keys["bureau"])
        with pytest.raises(MessageError, match="field 'head'"):
            _status(encode(forged))
