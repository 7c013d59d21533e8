"""The control-plane messages: topics, and one strict parser per kind of message on them.

Everything here travels through the MQTT broker, so nothing here may ever hold a feature value,
a share or a result: a request names applicants (or only a digest of a batch of ids, the ids
then travel over the parties' TLS links), a status report names a session, a party, a phase, an
MPC port and the party's audit head (seq and hash of its audit log's last line), a presence
message a party's state.

Topics, under the consortium's prefix P:
  P/presence/{party}          that party's signed, retained online/draining/offline
  P/request                   signed session requests, QoS 1
  P/train                     signed training requests, QoS 1 (consortium/train_request.py)
  P/publish                   signed publish requests, QoS 1 (consortium/publish_request.py)
  P/registry/{party}          that party's registry records, retained (consortium/records.py)
  P/session/{sid}/{party}     that party's signed status reports for session sid, QoS 1

Every payload from the broker goes through `decode_request`, `decode_status` or
`decode_presence` (mpc_credit.consortium.fields: size, depth, exact fields, exact types,
bounds), which return a typed message or raise MessageError with a short reason. Status and
presence messages are verified against the sender's key named by the topic (a forged
`offline` is refused); a request's signature is checked by the policy, which says why it
refuses. Text from another party comes back stripped of control characters.

(Over 300 lines for a reason: the schema of every message on the broker is read in one
place. `parse_request` and `parse_status` are old entry points some tests still use.)
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium import fields as f
from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.fields import HEX32, HEX64, MAX_TEXT, SIGNATURE, MessageError
from mpc_credit.consortium.signing import sign, verify
from mpc_credit.errors import KINDS
from mpc_credit.jsonwire import encode
from mpc_credit.vocabulary import MODES, REVEALS

REQUEST_LABEL = "mpc-credit/request@1"
STATUS_LABEL = "mpc-credit/status@1"
PRESENCE_LABEL = "mpc-credit/presence@1"
MAX_INLINE_IDS = 100  # larger requests carry a batch digest; ids travel over the MPC links
MAX_COUNT = 10_000_000  # applicants in one request, whatever the policy allows
MAX_TIME = 1e11  # unix seconds: bounds ts and deadline fields
SESSION_ID = HEX32

# status phases, and the fields each carries besides type/session/party/phase/ts/sig
ACK, REFUSE, PROGRESS, DONE, FAILED = "ack", "refuse", "progress", "done", "failed"
PHASES = (ACK, REFUSE, PROGRESS, DONE, FAILED)
PHASE_FIELDS: Mapping[str, frozenset[str]] = {
    ACK: frozenset({"port"}),
    REFUSE: frozenset({"reason"}),
    PROGRESS: frozenset({"message"}),
    DONE: frozenset(),
    FAILED: frozenset({"reason", "kind"}),
}
STATUS_BASE = frozenset({"type", "session", "party", "phase", "ts", "sig"})
STATUS_OPTIONAL = frozenset({"head"})  # [seq, hash]: the sender's audit head when it signed
MAX_SEQ = 2**53  # an audit line's sequence number, at most (exact in every JSON reader)

# presence states; optional public facts a presence message may carry
ONLINE, DRAINING, OFFLINE = "online", "draining", "offline"
STATES = (ONLINE, DRAINING, OFFLINE)
PRESENCE_BASE = frozenset({"type", "party", "state", "ts", "sig"})
PRESENCE_OPTIONAL = frozenset({"reason", "pid", "host"})
MAX_HOST = 253


class Topics:
    """The topic names of one consortium."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.request = f"{self.prefix}/request"
        self.train = f"{self.prefix}/train"
        self.publish = f"{self.prefix}/publish"
        self.presence_all = f"{self.prefix}/presence/+"
        self.registry_all = f"{self.prefix}/registry/+"
        self.session_all = f"{self.prefix}/session/+/+"

    def presence(self, party: str) -> str:
        return f"{self.prefix}/presence/{party}"

    def session(self, sid: str, party: str) -> str:
        return f"{self.prefix}/session/{sid}/{party}"

    def registry(self, party: str) -> str:
        return f"{self.prefix}/registry/{party}"

    def parse(self, topic: str) -> tuple[str, ...]:
        """('request',), ('train',), ('publish',), ('presence', party), ('registry', party)
        or ('session', sid, party); () if foreign."""
        if not topic.startswith(self.prefix + "/"):
            return ()
        parts = tuple(topic[len(self.prefix) + 1 :].split("/"))
        if parts in (("request",), ("train",), ("publish",)):
            return parts
        if len(parts) == 2 and parts[0] in ("presence", "registry"):
            return parts
        if len(parts) == 3 and parts[0] == "session":
            return parts
        return ()


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 over the ids, one per line: what a batch request commits to."""
    h = hashlib.sha256()
    for a in ids:
        h.update(a.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A session request, as signed by the requester."""

    session: str
    requester: str
    receiver: str
    model_id: str
    model_digest: str
    mode: str
    reveal: str
    ids: tuple[str, ...] | None  # None: a batch, given by digest and count
    batch_digest: str
    count: int
    deadline: float  # unix time
    nonce: str
    ts: float
    sig: str = ""

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d["ids"] = list(self.ids) if self.ids is not None else None
        d["type"] = "request"
        return d

    def to_json(self) -> bytes:
        return encode(self.body())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Request:
        """A request from trusted fields (tests, the local socket); the broker's go through
        `decode_request`."""
        ids = d.get("ids")
        return cls(
            session=str(d["session"]),
            requester=str(d["requester"]),
            receiver=str(d["receiver"]),
            model_id=str(d["model_id"]),
            model_digest=str(d["model_digest"]),
            mode=str(d["mode"]),
            reveal=str(d["reveal"]),
            ids=tuple(str(a) for a in ids) if ids is not None else None,
            batch_digest=str(d["batch_digest"]),
            count=int(d["count"]),
            deadline=float(d["deadline"]),
            nonce=str(d["nonce"]),
            ts=float(d["ts"]),
            sig=str(d.get("sig", "")),
        )


REQUEST_FIELDS = frozenset({*Request.__dataclass_fields__, "type"})


def new_request(
    key: Ed25519PrivateKey,
    *,
    requester: str,
    model_id: str,
    model_digest: str,
    mode: str,
    reveal: str,
    ids: Sequence[str],
    timeout: float,
    receiver: str | None = None,
    inline: bool | None = None,
    now: float | None = None,
) -> Request:
    """A signed request for `ids`; a long id list is committed to by digest only."""
    inline = len(ids) <= MAX_INLINE_IDS if inline is None else inline
    body = Request(
        **fresh(timeout, now),
        requester=requester,
        receiver=receiver or requester,
        model_id=model_id,
        model_digest=model_digest,
        mode=mode,
        reveal=reveal,
        ids=tuple(ids) if inline else None,
        batch_digest=ids_digest(ids),
        count=len(ids),
    ).body()
    return Request.from_dict(sign(REQUEST_LABEL, body, key))


def fresh(timeout: float, now: float | None = None) -> dict[str, Any]:
    """A new request's own fields: a new session id and nonce, dated `now`, due `timeout`
    seconds later."""
    now = time.time() if now is None else now
    return {
        "session": uuid.uuid4().hex,
        "deadline": float(now + timeout),
        "nonce": secrets.token_hex(16),
        "ts": float(now),
    }


def decode_request(payload: bytes | str, cons: Consortium | None = None) -> Request:
    """The request in `payload`, of exactly its schema, else MessageError.

    Party names must be the consortium's (any safe name without `cons`); inline ids are at
    most MAX_INLINE_IDS distinct ids, as many as `count`. The signature is the policy's check.
    """
    return request_of(f.load(payload), cons)


def envelope(d: Any, kind: str, fields: frozenset[str], cons: Consortium | None) -> dict[str, Any]:
    """The checked fields every signed request has (session, requester, deadline, nonce, ts,
    sig), once `d` is an object of exactly `fields` and of type `kind` (request or train)."""
    if not isinstance(d, dict):
        raise MessageError(f"expected a JSON object for the {kind}")
    f.exact(d, fields)
    f.constant(d, "type", kind)
    return {
        "session": f.token(d, "session", SESSION_ID, "32 hex digits"),
        "requester": f.name(d, "requester", cons.names if cons is not None else None),
        "deadline": f.real(d, "deadline", 0.0, MAX_TIME),
        "nonce": f.token(d, "nonce", HEX32, "32 hex digits"),
        "ts": f.real(d, "ts", 0.0, MAX_TIME),
        "sig": f.token(d, "sig", SIGNATURE, "an Ed25519 signature in base64"),
    }


def request_of(d: Any, cons: Consortium | None = None) -> Request:
    """`decode_request` of an already decoded JSON value."""
    common = envelope(d, "request", REQUEST_FIELDS, cons)
    names = cons.names if cons is not None else None
    count = f.integer(d, "count", 1, MAX_COUNT)
    ids = None if d["ids"] is None else f.identifiers(d, "ids", MAX_INLINE_IDS)
    if ids is not None and len(ids) != count:
        raise MessageError("field 'ids': not as many ids as 'count'")
    return Request(
        **common,
        receiver=f.name(d, "receiver", names),
        model_id=f.safe_name(d, "model_id", at=True),  # ID@VERSION (registry)
        model_digest=f.token(d, "model_digest", HEX64, "64 hex digits"),
        mode=f.choice(d, "mode", MODES),
        reveal=f.choice(d, "reveal", REVEALS),
        ids=ids,
        batch_digest=f.token(d, "batch_digest", HEX64, "64 hex digits"),
        count=count,
    )


def parse_request(payload: bytes) -> Request | None:
    """`decode_request` without a consortium, None for a malformed payload (the daemon's
    old entry point; new code calls `decode_request` and logs the MessageError)."""
    try:
        return decode_request(payload)
    except MessageError:
        return None


# ---------------------------------------------------------------- status reports


@dataclass(frozen=True)
class Status:
    """A verified status report; the text fields are cleaned, absent ones empty."""

    session: str
    party: str
    phase: str
    ts: float
    port: int | None = None  # ack: the MPC port the party reserved
    reason: str = ""  # refuse, failed: the public reason
    kind: str = ""  # failed: refused / timeout / failed / input
    message: str = ""  # progress
    head: tuple[int, str] | None = None  # the sender's audit head (seq, hash) when it signed

    def as_dict(self) -> dict[str, Any]:
        """The report as the daemon's handlers read it: the phase's own fields only (and
        `head` when it carried one)."""
        d = {k: v for k, v in asdict(self).items() if k in STATUS_BASE}
        d.update({k: getattr(self, k) for k in PHASE_FIELDS[self.phase]})
        if self.head is not None:
            d["head"] = self.head
        d["type"] = "status"
        return d


def status(key: Ed25519PrivateKey, session: str, party: str, phase: str, **fields: Any) -> bytes:
    """A signed status report payload; text fields are cleaned and cut to MAX_TEXT; `head`
    (seq, hash) is the sender's audit head."""
    for k in ("reason", "message"):
        if k in fields:
            fields[k] = f.clean_text(str(fields[k]), MAX_TEXT)
    if fields.get("head") is not None:
        seq, digest = fields["head"]
        fields["head"] = [seq, digest]
    body = {
        "type": "status",
        "session": session,
        "party": party,
        "phase": phase,
        "ts": time.time(),
        **fields,
    }
    return encode(sign(STATUS_LABEL, body, key))


def decode_status(payload: bytes | str, cons: Consortium, sid: str, party: str) -> Status:
    """The report `party` signed about session `sid` (both from the topic), else MessageError."""
    if party not in cons.names:
        raise MessageError("status from a party outside the consortium")
    d = f.load(payload)
    phase = f.choice(d, "phase", PHASES) if "phase" in d else ""
    f.exact(d, STATUS_BASE | PHASE_FIELDS.get(phase, frozenset()), STATUS_OPTIONAL)
    f.constant(d, "type", "status")
    if f.token(d, "session", SESSION_ID, "32 hex digits") != sid:
        raise MessageError("field 'session': not the session of the topic")
    if f.name(d, "party", cons.names) != party:
        raise MessageError("field 'party': not the party of the topic")
    out = Status(
        session=sid,
        party=party,
        phase=phase,
        ts=f.real(d, "ts", 0.0, MAX_TIME),
        port=f.integer(d, "port", 1, 65535) if phase == ACK else None,
        reason=f.text(d, "reason") if "reason" in d else "",
        kind=f.choice(d, "kind", KINDS) if phase == FAILED else "",
        message=f.text(d, "message") if phase == PROGRESS else "",
        head=audit_head(d["head"]) if "head" in d else None,
    )
    f.token(d, "sig", SIGNATURE, "an Ed25519 signature in base64")
    if not verify(STATUS_LABEL, d, cons.party(party).public_key):
        raise MessageError(f"status not signed by {party}")
    return out


def audit_head(value: Any) -> tuple[int, str]:
    """An audit head: exactly [seq, hash], seq an integer 0..MAX_SEQ, hash 64 hex digits."""
    if not (isinstance(value, list) and len(value) == 2):
        raise MessageError("field 'head': expected [seq, hash]")
    seq, digest = value
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise MessageError(f"field 'head': seq must be an integer from 0 to {MAX_SEQ}")
    if not isinstance(digest, str) or not HEX64.fullmatch(digest):
        raise MessageError("field 'head': hash must be 64 hex digits")
    return seq, digest


def parse_status(payload: bytes, cons: Consortium, sid: str, party: str) -> dict[str, Any] | None:
    """`decode_status` as a dict, None if refused (the daemon's old entry point)."""
    try:
        return decode_status(payload, cons, sid, party).as_dict()
    except MessageError:
        return None


# ---------------------------------------------------------------- presence


@dataclass(frozen=True)
class Presence:
    """A verified presence message: the party's state and the public facts it added."""

    party: str
    state: str
    ts: float
    reason: str = ""
    pid: int | None = None
    host: str = ""


def presence(key: Ed25519PrivateKey, party: str, state: str, **fields: Any) -> bytes:
    """A signed presence payload (retained: public facts only; `fields` among reason, pid,
    host), dated now: the others keep a party's newest."""
    if state not in STATES or not set(fields) <= PRESENCE_OPTIONAL:
        raise ValueError(f"presence: state {state!r}, fields {sorted(fields)}")
    if "reason" in fields:
        fields["reason"] = f.clean_text(str(fields["reason"]), MAX_TEXT)
    body = {"type": "presence", "party": party, "state": state, "ts": time.time(), **fields}
    return encode(sign(PRESENCE_LABEL, body, key))


def decode_presence(payload: bytes | str, cons: Consortium, party: str) -> Presence:
    """`party`'s signed presence (party from the topic), else MessageError: an unsigned
    message, one signed by another party or an empty (cleared) one says nothing."""
    if party not in cons.names:
        raise MessageError("presence of a party outside the consortium")
    if not payload:
        raise MessageError("empty presence message")
    info = cons.party(party)
    d = f.load(payload)
    f.exact(d, PRESENCE_BASE, PRESENCE_OPTIONAL)
    f.constant(d, "type", "presence")
    if f.name(d, "party", cons.names) != party:
        raise MessageError("field 'party': not the party of the topic")
    out = Presence(
        party=party,
        state=f.choice(d, "state", STATES),
        ts=f.real(d, "ts", 0.0, MAX_TIME),
        reason=f.text(d, "reason") if "reason" in d else "",
        pid=f.integer(d, "pid", info.pid, info.pid) if "pid" in d else None,
        host=f.text(d, "host", MAX_HOST) if "host" in d else "",
    )
    f.token(d, "sig", SIGNATURE, "an Ed25519 signature in base64")
    if not verify(PRESENCE_LABEL, d, info.public_key):
        raise MessageError(f"presence not signed by {party}")
    return out
