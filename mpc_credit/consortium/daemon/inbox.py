"""The broker's messages into a daemon: each through its strict decoder, failures summarised.

Every payload on a consortium topic goes through `decode_request`, `decode_train_request`,
`decode_publish_request`, `decode_snapshot`, `decode_status` or `decode_presence`
(mpc_credit.consortium.messages, .train_request, .publish_request, .records: size, UTF-8,
depth, NaN/Infinity, exact fields and types, and for status, presence and registry records
the sender's signature). A payload that fails is dropped: the daemon logs one short line per
topic kind every LOG_EVERY seconds (with how many more it dropped since), never the payload,
and a request (scoring or training) that fails parsing gets a bounded `rejected` audit line
(DaemonAudit throttles those too). Nothing a peer sends can stop the daemon or its broker
connection: a message is data, never a reason to disconnect."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.daemon.audit import DaemonAudit, Throttle
from mpc_credit.consortium.messages import (
    Presence,
    Request,
    Status,
    Topics,
    decode_presence,
    decode_request,
    decode_status,
)
from mpc_credit.consortium.publish_request import PublishRequest, decode_publish_request
from mpc_credit.consortium.records import Record, decode_snapshot
from mpc_credit.consortium.train_request import TrainRequest, decode_train_request
from mpc_credit.jsonwire import WireError

log = logging.getLogger("mpc_credit.daemon")
LOG_EVERY = 10.0  # seconds between two log lines about dropped messages of one topic kind


@dataclass(frozen=True)
class Snapshot:
    """A party's registry records, from its registry topic (each verified, each its own)."""

    party: str
    records: list[Record]


Message = Request | TrainRequest | PublishRequest | Status | Presence | Snapshot
REQUEST_KINDS = ("request", "train", "publish")


class Inbox:
    """Decodes what the broker delivers; None for a foreign topic or a dropped payload."""

    def __init__(self, cons: Consortium, topics: Topics, audit: DaemonAudit) -> None:
        self.cons, self.topics, self.audit = cons, topics, audit
        self._log = Throttle(LOG_EVERY)
        self.dropped = 0  # payloads dropped since start (party status shows it)

    def decode(self, topic: str, payload: bytes) -> Message | None:
        kind = self.topics.parse(topic)
        if not kind:
            return None
        try:
            if kind[0] == "request":
                return decode_request(payload, self.cons)
            if kind[0] == "train":
                return decode_train_request(payload, self.cons)
            if kind[0] == "publish":
                return decode_publish_request(payload, self.cons)
            if kind[0] == "registry":
                return Snapshot(kind[1], decode_snapshot(payload, self.cons, kind[1]))
            if kind[0] == "presence":
                return decode_presence(payload, self.cons, kind[1])
            return decode_status(payload, self.cons, kind[1], kind[2])
        except WireError as exc:  # MessageError included
            self.drop(kind[0], topic, payload, str(exc))
            return None

    def drop(self, kind: str, topic: str, payload: bytes, reason: str) -> None:
        """Count, log (throttled) and, for a request, audit (bounded) a refused payload."""
        self.dropped += 1
        if kind in REQUEST_KINDS:
            self.audit.rejected(topic, payload, kind, reason)
        if kind == "presence" and not payload:
            return  # a cleared retained message: nothing to say
        held = self._log.allow(kind)
        if held is not None:
            more = f" ({held} more dropped since the last such line)" if held else ""
            log.warning(
                "dropped a %s message of %d bytes: %s%s", kind, len(payload), reason[:120], more
            )
