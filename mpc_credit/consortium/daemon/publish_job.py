"""A publish session at one party's daemon: the model owner hands each party its part.

The session runs like any other (acknowledged by every party, MPC links over mutual TLS);
its work is one message per link: `engine.exchange.deliver` from the owner, each party
receiving only its own parts (one per mode the version serves: a feature owner its own
features' bins, with points only in `shared` mode; a party without features the public shape
only). A receiver decodes its parts strictly, checks each against the digest the owner signed
in the publish record, and keeps them pending; `commit` stores them and the record (and, at
the owner, the full model) once every party reported done, so a version is either taken by
the whole session or by nobody in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.daemon.models import ModelBook
from mpc_credit.consortium.model_parts import model_parts, part_digest
from mpc_credit.consortium.publish_request import PublishRequest
from mpc_credit.consortium.records import Record
from mpc_credit.engine.exchange import deliver
from mpc_credit.errors import MpcCreditError, SessionError
from mpc_credit.jsonwire import WireError, decode_object, encode
from mpc_credit.scorecard.model import Scorecard, from_dict, to_dict

MAX_PARTS_BYTES = 8 << 20  # a party's parts of one version, all modes


@dataclass
class Pending:
    """What a publish session holds until every party is done: the parts (and the owner's
    full model) to store with the record."""

    req: PublishRequest
    parts: dict[str, Scorecard] = field(default_factory=dict)  # mode -> this party's part
    full: Scorecard | None = None  # at the owner


def encode_parts(parts: dict[str, Scorecard]) -> bytes:
    """A party's parts as one JSON object, mode -> part."""
    return encode({mode: to_dict(part) for mode, part in parts.items()})


def decode_parts(data: bytes, req: PublishRequest, party: str) -> dict[str, Scorecard]:
    """`party`'s parts from the owner's bytes: exactly the record's modes, each the part the
    owner signed (its digest); SessionError naming the owner otherwise."""
    owner, ref = req.requester, req.record.ref
    try:
        raw = decode_object(data, max_bytes=MAX_PARTS_BYTES)
    except WireError as exc:
        raise SessionError(f"party {owner} sent parts of {ref} that are not JSON ({exc})") from None
    if set(raw) != set(req.record.modes):
        raise SessionError(f"party {owner} sent parts of {ref} for other modes than it signed")
    out = {}
    for mode, value in raw.items():
        try:
            part = from_dict(value, f"{ref} ({mode} part from {owner})")
        except MpcCreditError as exc:
            raise SessionError(f"party {owner} sent a malformed part of {ref}: {exc}") from None
        if part_digest(part) != req.record.parts.get(party, {}).get(mode):
            raise SessionError(
                f"party {owner} sent a {mode} part of {ref} whose digest does not match the record"
            )
        out[mode] = part
    return out


class PublishingSide:
    """This party's side of publish sessions."""

    def __init__(self, party: str, cons: Consortium, book: ModelBook) -> None:
        self.party, self.cons, self.book = party, cons, book
        self.models: dict[str, Scorecard] = {}  # session -> the full model, at the owner
        self.after_commit: Callable[[Record], None] | None = None  # e.g. an automatic approval

    def offer(self, sid: str, model: Scorecard) -> None:
        """The owner's full model for its publish session `sid` (from its local client)."""
        self.models[sid] = model

    async def run(self, mpc: Any, sid: str, req: PublishRequest, parties: list[str]) -> Pending:
        """Deliver (owner) or receive (others) the parts over the session's MPC links."""
        owner = parties.index(req.requester)
        pending = Pending(req)
        if self.party == req.requester:
            pending.full = self.models.pop(sid)
            parts = model_parts(pending.full, self.cons, self.party, req.record.modes)  # type: ignore[arg-type]
            payloads = {parties.index(p): encode_parts(per) for p, per in parts.items()}
            await deliver(mpc, owner, payloads)
        else:
            data = await deliver(mpc, owner, None)
            pending.parts = decode_parts(data, req, self.party)
        return pending

    def commit(self, pending: Pending) -> None:
        """Store the files, then the record (every party reported done)."""
        record = pending.req.record
        if pending.full is not None:
            self.book.store.store_full(record, pending.full)
        for mode, part in pending.parts.items():
            self.book.store.store_part(record, mode, part)
        self.book.take(record)
        if self.after_commit is not None:
            self.after_commit(record)

    def forget(self, sid: str) -> None:
        """A session that ended without a publish: drop what the owner offered."""
        self.models.pop(sid, None)
