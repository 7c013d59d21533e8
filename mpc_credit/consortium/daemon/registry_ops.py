"""The registry's operations on a daemon's control socket: list, publish, decide, set status.

- `models`: the registry as this party sees it (every version, its status, who approved or
  refused it, what is pending) and which modes this party can serve now, with the problem
  line of any version it cannot;
- `publish` (a model owner): the full model from the local client, checked (a full model,
  its feature owners parties of the consortium, no prohibited feature), becomes the next
  version of its id: the daemon signs the publish record and hands the publish session to the
  client operations (`submit`), which publish it and wait for the session like any other;
- `decide` (a feature owner): its signed approval or refusal of one version's digest; an
  approval needs this party's part of the version here (received in the publish session);
  the same decision twice is not an error, it answers with the first;
- `set-status` (the version's owner): champion, challenger, candidate or retired.

A record this party makes is on disk (registry.jsonl) before it is announced; it is then
sent as this party's registry snapshot, the retained message of its registry topic, so a
party that was offline or restarts reads it when it connects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.control import ControlRequest
from mpc_credit.consortium.daemon.control import LocalClient
from mpc_credit.consortium.daemon.models import ModelBook, split_ref
from mpc_credit.consortium.model_parts import publish_fields
from mpc_credit.consortium.policy import prohibited_in
from mpc_credit.consortium.records import (
    APPROVE,
    PUBLISH,
    REFUSE,
    STATUS,
    Record,
    make_record,
    parse_record,
)
from mpc_credit.consortium.registry import ModelVersion, RegistryError, approvers, publishers
from mpc_credit.errors import MpcCreditError, UsageError
from mpc_credit.scorecard.model import Scorecard, from_dict
from mpc_credit.vocabulary import MODES

Announce = Callable[[], Awaitable[None]]
Submit = Callable[[Record, Scorecard, ControlRequest, LocalClient], Awaitable[None]]


def version_row(v: ModelVersion, book: ModelBook) -> dict[str, Any]:
    """One version as `model list` shows it."""
    return {
        "model": v.ref,
        "id": v.id,
        "version": v.version,
        "digest": v.digest,
        "owner": v.owner,
        "status": v.status,
        "in_service": v.in_service,
        "approved": list(v.approved),
        "refused": dict(v.refused),
        "pending": list(v.pending),
        "modes": list(v.publish.modes),
        "reveal": list(v.publish.reveal),
        "offered": [m for m in v.publish.modes if book.offers(v.ref, m)],
        "from_consortium_file": v.publish.genesis,
        "features": features(v, book),
    }


def features(v: ModelVersion, book: ModelBook) -> list[dict[str, Any]]:
    """The version's features as every part names them (name, owner, bin count: public),
    from a file this party serves it with; none when it serves it in no mode."""
    for mode in MODES:
        model = book.models.get((v.ref, mode))
        if model is not None:
            return [{"name": f.name, "owner": f.owner, "bins": f.n_bins} for f in model.features]
    return []


class RegistryOps:
    """A daemon's answers to the registry's control requests."""

    def __init__(
        self, party: str, key: Ed25519PrivateKey, book: ModelBook, announce: Announce
    ) -> None:
        self.party, self.key, self.book, self.announce = party, key, book, announce
        self.cons = book.cons

    async def models(self, op: ControlRequest, local: LocalClient) -> None:
        rows = [version_row(v, self.book) for v in self.book.registry.versions()]
        local.finish("result", party=self.party, models=rows, problems=list(self.book.problems))

    def publish_record(self, op: ControlRequest) -> tuple[Record, Scorecard]:
        """The next version of the local client's model, as this party's signed record."""
        if self.party not in publishers(self.cons):
            raise RegistryError(f"{self.party} may not publish models (not a model owner)")
        try:
            model = from_dict(op.model, "the model to publish")
        except MpcCreditError as exc:
            raise UsageError(str(exc)) from None
        if model.part is not None:
            raise UsageError("the model to publish is a part; publish the full model")
        strangers = [o for o in model.owners if o not in self.cons.names]
        if strangers:
            raise UsageError(f"feature owner {', '.join(strangers)} is not a party")
        banned = prohibited_in([f.name for f in model.features], self.cons)
        if banned:
            raise UsageError(f"model {model.name} uses prohibited feature {', '.join(banned)}")
        newest = max(
            (v.version for v in self.book.registry.versions() if v.id == model.name), default=0
        )
        body = publish_fields(
            model,
            self.cons,
            owner=self.party,
            version=newest + 1,
            modes=op.modes,  # type: ignore[arg-type]
            reveal=op.reveals,
            status=op.status,
        )
        record = self._sign(PUBLISH, **body)
        reason = self.book.registry.refusal(record)
        if reason is not None:
            raise RegistryError(reason)
        return record, model

    async def decide(self, op: ControlRequest, local: LocalClient) -> None:
        await _answering(local, self._decide(op, local))

    async def set_status(self, op: ControlRequest, local: LocalClient) -> None:
        await _answering(local, self._set_status(op, local))

    async def _decide(self, op: ControlRequest, local: LocalClient) -> None:
        version = self._version(op.model_id)
        if self.party not in approvers(version.publish):
            raise UsageError(f"party {self.party} owns no feature of {version.ref}")
        kind = APPROVE if op.approve else REFUSE
        mine = [
            r
            for r in self.book.registry.decisions(self.party)
            if r.key_model == version.publish.key_model
        ]
        if mine and max(mine, key=lambda r: r.seq).kind == kind:
            local.finish("result", model=version.ref, decision=kind, recorded=False)
            return
        if op.approve:
            banned = prohibited_in(version.publish.features, self.cons)
            if banned:  # the policy may have grown since the version was published
                raise RegistryError(f"{version.ref} uses prohibited feature {', '.join(banned)}")
            self._check_parts(version)
        fields: dict[str, Any] = {"reason": op.reason or "refused"} if kind == REFUSE else {}
        await self._record(kind, version, local, **fields)

    async def _set_status(self, op: ControlRequest, local: LocalClient) -> None:
        version = self._version(op.model_id)
        if version.owner != self.party:
            raise UsageError(f"{version.ref} is {version.owner}'s model; its owner sets its status")
        await self._record(STATUS, version, local, status=op.status)

    def auto_approve(self, publish: Record, owners: Sequence[str]) -> Record | None:
        """This party's approval of a version just taken, when its owner is one of `owners`
        (party.toml `auto_approve`) and this party owns a feature of it; None otherwise."""
        version = self.book.registry.version(publish.model, publish.version)
        if version is None or publish.author not in owners:
            return None
        if self.party not in approvers(publish):
            return None
        record = self._sign(
            APPROVE, model=publish.model, version=publish.version, digest=publish.digest
        )
        self.book.take(record)
        return record

    def _check_parts(self, version: ModelVersion) -> None:
        """This party holds its part of `version` in every mode (else it cannot serve it)."""
        pub = version.publish
        for mode in pub.modes:
            if not self.book.store.file(pub.model, pub.version, mode).is_file():
                raise UsageError(
                    f"{version.ref}: this party's {mode} part is not here; the owner publishes "
                    "it again while every party is online"
                )

    def _version(self, model_id: str | None) -> ModelVersion:
        """ID@VERSION exactly; a bare ID: its newest version."""
        if model_id is None:
            raise UsageError("name a model as ID or ID@VERSION")
        model, number = split_ref(model_id)
        found = [v for v in self.book.registry.versions() if v.id == model]
        if number is not None:
            found = [v for v in found if v.version == number]
        if not found:
            raise UsageError(f"model {model_id!r} is not in the registry")
        return max(found, key=lambda v: v.version)

    async def _record(
        self, kind: str, version: ModelVersion, local: LocalClient, **fields: Any
    ) -> None:
        pub = version.publish
        record = self._sign(kind, model=pub.model, version=pub.version, digest=pub.digest, **fields)
        self.book.take(record)  # RegistryError: refused, in one line
        await self.announce()
        after = self.book.registry.version(pub.model, pub.version)
        status = after.status if after is not None else ""
        local.finish("result", model=version.ref, decision=kind, recorded=True, status=status)

    def _sign(self, kind: str, **body: Any) -> Record:
        seq = self.book.registry.next_seq(self.party)
        return parse_record(make_record(self.key, kind, self.party, seq, **body), self.cons)


async def _answering(local: LocalClient, work: Awaitable[None]) -> None:
    """Run `work`; an error of ours (a refusal, bad input) is the client's one-line answer."""
    try:
        await work
    except MpcCreditError as exc:
        local.fail(exc)
