"""The control-plane messages: topics, signed session requests, signed status reports.

Everything here travels through the MQTT broker, so nothing here may ever hold a
feature value, a share or a result: a request names applicants (or only a digest of a
batch of ids, the ids then travel over the parties' TLS links), a status report names
a session, a party, a phase and an MPC port.

Topics, under the consortium's prefix P:
  P/presence/{party}          retained "online"/"offline" (the last will says offline)
  P/request                   signed session requests, QoS 1
  P/session/{sid}/{party}     that party's signed status reports for session sid, QoS 1
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.signing import sign, verify

if TYPE_CHECKING:
    pass

REQUEST_LABEL = "mpc-credit/request@1"
STATUS_LABEL = "mpc-credit/status@1"
MAX_INLINE_IDS = 100  # larger requests carry a batch digest; ids travel over the MPC links
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")

# status phases
ACK, REFUSE, PROGRESS, DONE, FAILED = "ack", "refuse", "progress", "done", "failed"
PHASES = (ACK, REFUSE, PROGRESS, DONE, FAILED)


class Topics:
    """The topic names of one consortium."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.request = f"{self.prefix}/request"
        self.presence_all = f"{self.prefix}/presence/+"
        self.session_all = f"{self.prefix}/session/+/+"

    def presence(self, party: str) -> str:
        return f"{self.prefix}/presence/{party}"

    def session(self, sid: str, party: str) -> str:
        return f"{self.prefix}/session/{sid}/{party}"

    def parse(self, topic: str) -> tuple[str, ...]:
        """('request',), ('presence', party) or ('session', sid, party); () if foreign."""
        if not topic.startswith(self.prefix + "/"):
            return ()
        parts = tuple(topic[len(self.prefix) + 1 :].split("/"))
        if parts == ("request",):
            return parts
        if len(parts) == 2 and parts[0] == "presence":
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
        return json.dumps(self.body(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Request:
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
    now = time.time() if now is None else now
    inline = len(ids) <= MAX_INLINE_IDS if inline is None else inline
    body = Request(
        session=uuid.uuid4().hex,
        requester=requester,
        receiver=receiver or requester,
        model_id=model_id,
        model_digest=model_digest,
        mode=mode,
        reveal=reveal,
        ids=tuple(ids) if inline else None,
        batch_digest=ids_digest(ids),
        count=len(ids),
        deadline=now + timeout,
        nonce=secrets.token_hex(16),
        ts=now,
    ).body()
    return Request.from_dict(sign(REQUEST_LABEL, body, key))


def parse_request(payload: bytes) -> Request | None:
    """The request in a payload, or None if it is not a well-formed request."""
    try:
        d = json.loads(payload)
        if d.get("type") != "request":
            return None
        return Request.from_dict(d)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def status(key: Ed25519PrivateKey, session: str, party: str, phase: str, **fields: Any) -> bytes:
    """A signed status report payload."""
    body = {
        "type": "status",
        "session": session,
        "party": party,
        "phase": phase,
        "ts": time.time(),
        **fields,
    }
    return json.dumps(sign(STATUS_LABEL, body, key), separators=(",", ":")).encode()


def parse_status(payload: bytes, cons: Consortium, sid: str, party: str) -> dict[str, Any] | None:
    """A verified status report from `party` about session `sid`, else None."""
    try:
        d = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(d, dict) or d.get("type") != "status" or d.get("phase") not in PHASES:
        return None
    if d.get("session") != sid or d.get("party") != party or party not in cons.names:
        return None
    if not verify(STATUS_LABEL, d, cons.party(party).public_key):
        return None
    return d


def presence(party: str, state: str, **fields: Any) -> bytes:
    """A presence payload (retained: public facts only)."""
    return json.dumps({"party": party, "state": state, "ts": time.time(), **fields}).encode()
