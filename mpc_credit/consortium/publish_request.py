"""A publish request: a model owner asks the consortium to take a new model version.

`mpc-credit model publish MODEL.json --config party.toml` asks the owner's own daemon; the
daemon signs a publish record (consortium/records.py: the version's digest, features, modes,
reveal policies and the digest of every party's part) and wraps it in a `PublishRequest`,
signed under PUBLISH_LABEL, on the consortium's topic P/publish. Every daemon admits it as it
admits a scoring or training request (fresh, not replayed, queued in broker order) and as the
registry would take its record; the session then connects the parties' MPC links and the
owner hands each party its part over its own TLS link (`engine.exchange.deliver`): the broker
carries the record (public metadata: names, digests) and never a bin edge or a point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.fields import MessageError, load
from mpc_credit.consortium.messages import Request, envelope, fresh
from mpc_credit.consortium.records import MAX_RECORD_BYTES, PUBLISH, Record, parse_record
from mpc_credit.consortium.signing import sign
from mpc_credit.consortium.train_request import TrainRequest
from mpc_credit.jsonwire import encode

PUBLISH_LABEL = "mpc-credit/publish@1"
PUBLISH_FIELDS = frozenset(
    {"type", "session", "requester", "record", "deadline", "nonce", "ts", "sig"}
)


@dataclass(frozen=True)
class PublishRequest:
    """A model owner's request to publish one version: the session around its record."""

    session: str
    requester: str  # the model owner, the record's author
    record: Record
    deadline: float
    nonce: str
    ts: float
    sig: str = ""
    wire: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def body(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("session", "requester", "deadline", "nonce", "ts")}
        return {"type": "publish", **d, "record": dict(self.record.wire), "sig": self.sig}

    def to_json(self) -> bytes:
        return encode(self.body())

    @property
    def receiver(self) -> str:
        """Who ends up holding the full model: its owner, the requester."""
        return self.requester


AnyRequest = Request | TrainRequest | PublishRequest  # what a daemon admits and runs


def new_publish_request(
    key: Ed25519PrivateKey, record: Record, *, timeout: float, now: float | None = None
) -> PublishRequest:
    """The owner's signed request to publish `record` (which it signed), due in `timeout` s."""
    body = {"type": "publish", **fresh(timeout, now), "requester": record.author}
    body["record"] = dict(record.wire)
    signed = sign(PUBLISH_LABEL, body, key)
    return PublishRequest(
        session=signed["session"],
        requester=record.author,
        record=record,
        deadline=signed["deadline"],
        nonce=signed["nonce"],
        ts=signed["ts"],
        sig=signed["sig"],
        wire=signed,
    )


def decode_publish_request(payload: bytes | str, cons: Consortium) -> PublishRequest:
    """The publish request in `payload`, of exactly its schema, with a publish record its
    requester signed; else MessageError (the request's own signature is the policy's check)."""
    d = load(payload, max_bytes=MAX_RECORD_BYTES + 4096)
    common = envelope(d, "publish", PUBLISH_FIELDS, cons)
    record = parse_record(_object(d["record"]), cons)
    if record.kind != PUBLISH or record.author != common["requester"]:
        raise MessageError("field 'record': not a publish record of the requester")
    return PublishRequest(**common, record=record, wire=d)


def _object(v: Any) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise MessageError("field 'record': expected a JSON object")
    return v
