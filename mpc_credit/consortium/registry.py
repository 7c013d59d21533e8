"""The model registry: a set of signed records folded into the models every party sees.

Records (consortium/records.py) say who published which model version, who approved or
refused it and what status its owner gave it. The registry is a function of the *set* of
records, not of the order they arrived in, so two parties holding the same records see the
same registry whatever path each record took:

- a version is published once, by a model owner the consortium names, with a version above
  every earlier one of its id, and uses no prohibited feature;
- it is *in service* once every feature owner other than its publisher approved that exact
  digest (each owner's latest decision counts) and its owner has not retired it;
- its status is its owner's latest word (publish as, then status records); a version not
  approved by all is a `candidate` whatever its owner said; retired is final;
- of the versions in service that their owners made `champion`, the one made so last
  (time, then author, then sequence) is the champion; the others are candidates again; the
  same for `challenger`. So publishing a new champion leaves the old one serving until the
  new one is approved everywhere, and promoting a challenger is one signed record.

`Registry.add` refuses, with one line, a record that breaks a rule (a non-owner publishing,
an older version replayed, a second record under an author's sequence number); an approval
whose publish record has not arrived yet is kept and counts once it does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.policy import prohibited_in
from mpc_credit.consortium.records import (
    APPROVE,
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    PUBLISH,
    REFUSE,
    RETIRED,
    STATUS,
    Record,
)
from mpc_credit.errors import MpcCreditError
from mpc_credit.vocabulary import MODES, REVEALS

Ref = tuple[str, int]  # (model id, version)


class RegistryError(MpcCreditError):
    """A record the registry refuses; the text says which rule it breaks, in one line."""

    kind = "refused"
    exit_code = 4


@dataclass(frozen=True)
class ModelVersion:
    """One published model version as the registry sees it now."""

    publish: Record
    status: str  # the effective status: candidate, champion, challenger or retired
    approved: tuple[str, ...]  # feature owners whose latest decision approves this digest
    refused: dict[str, str] = field(default_factory=dict)  # owner -> its reason
    pending: tuple[str, ...] = ()  # feature owners that have not decided yet

    @property
    def id(self) -> str:
        return self.publish.model

    @property
    def version(self) -> int:
        return self.publish.version

    @property
    def ref(self) -> str:
        return self.publish.ref

    @property
    def digest(self) -> str:
        return self.publish.digest

    @property
    def owner(self) -> str:
        """The model owner: the party that published it and holds the full model."""
        return self.publish.author

    @property
    def in_service(self) -> bool:
        """Approved by every feature owner and not retired: parties may score with it."""
        return self.status != RETIRED and not self.pending and not self.refused


def publishers(cons: Consortium) -> tuple[str, ...]:
    """The parties that may publish models: the policy's `model_owners`, else the owners of
    the models in the consortium file (a consortium from before the registry)."""
    return cons.policy.model_owners or tuple(dict.fromkeys(m.owner for m in cons.models))


def genesis(cons: Consortium) -> list[Record]:
    """The models of the consortium file (a consortium from before the registry) as version 1
    of their id, in service without approvals (every party installed them with the consortium
    file): the champion when there is one only. Sequence 0: no signed record has it."""
    status = CHAMPION if len(cons.models) == 1 else CANDIDATE
    return [
        Record(
            PUBLISH, m.owner, 0, 0.0, m.id, 1, m.digest, modes=MODES, reveal=REVEALS, status=status
        )
        for m in cons.models
    ]


def approvers(publish: Record) -> tuple[str, ...]:
    """Whose approval a version needs: its feature owners other than its publisher."""
    return tuple(o for o in publish.owners if o != publish.author)


class Registry:
    """The records a party holds, checked as they are added, and the models they make."""

    def __init__(self, cons: Consortium) -> None:
        self.cons = cons
        self.records: dict[tuple[str, int], Record] = {}
        self._publish: dict[tuple[str, int], Record] = {g.key_model: g for g in genesis(cons)}

    # ------------------------------------------------------------ adding records

    def add(self, record: Record) -> bool:
        """Add a verified record: True if new, False if already held; RegistryError if it
        breaks a rule (nothing is added then)."""
        held = self.records.get(record.key)
        if held is not None:
            if held.wire != record.wire:
                raise RegistryError(
                    f"{record.author}'s registry record {record.seq} differs from the one "
                    "already recorded: refused (a rewritten registry)"
                )
            return False
        self._check(record)
        self.records[record.key] = record
        if record.kind == PUBLISH:
            self._publish[record.key_model] = record
        return True

    def refusal(self, record: Record) -> str | None:
        """Why `add` would refuse `record` (None: it would take it, or holds it already);
        nothing is added."""
        held = self.records.get(record.key)
        if held is not None:
            return None if held.wire == record.wire else "a second record under its number"
        try:
            self._check(record)
        except RegistryError as exc:
            return str(exc)
        return None

    def add_all(self, records: Iterable[Record]) -> list[str]:
        """Add each record (publishes first, so approvals find theirs); the refusals, one
        line each."""
        errors = []
        for r in sorted(records, key=lambda r: (r.kind != PUBLISH, r.author, r.seq)):
            try:
                self.add(r)
            except RegistryError as exc:
                errors.append(str(exc))
        return errors

    def next_seq(self, author: str) -> int:
        """The sequence number `author`'s next record takes."""
        return 1 + max((s for (a, s) in self.records if a == author), default=0)

    def _check(self, r: Record) -> None:
        if r.kind == PUBLISH:
            self._check_publish(r)
            return
        pub = self._publish.get((r.model, r.version))
        if pub is None:
            if r.kind == STATUS:
                raise RegistryError(f"model {r.ref} is not published: status refused")
            return  # an approval or refusal ahead of its publish record: counted once it arrives
        if pub.digest != r.digest:
            raise RegistryError(f"{r.author}'s {r.kind} names another digest than {r.ref}'s")
        if r.kind in (APPROVE, REFUSE) and r.author not in approvers(pub):
            raise RegistryError(f"{r.author} owns no feature of {r.ref}: its {r.kind} refused")
        if r.kind == STATUS:
            if r.author != pub.author:
                raise RegistryError(f"{r.author} is not {r.ref}'s owner: status refused")
            if self._target(pub)[0] == RETIRED:
                raise RegistryError(f"model {r.ref} is retired: status refused")

    def _check_publish(self, r: Record) -> None:
        if r.author not in publishers(self.cons):
            raise RegistryError(f"{r.author} may not publish models (not a model owner)")
        same = self._publish.get((r.model, r.version))
        if same is not None:
            raise RegistryError(f"model {r.ref} is already published: refused")
        others = [p for (m, _), p in self._publish.items() if m == r.model]
        if any(p.author != r.author for p in others):
            raise RegistryError(f"model id {r.model!r} belongs to another owner: refused")
        newest = max((p.version for p in others), default=0)
        if r.version <= newest:
            raise RegistryError(
                f"model {r.ref} is not newer than version {newest} already published: "
                "refused (a replayed or stale record)"
            )
        banned = prohibited_in(r.features, self.cons)
        if banned:
            raise RegistryError(f"model {r.ref} uses prohibited feature {', '.join(banned)}")
        receivers = set(self.cons.names) - {r.author}
        if set(r.parts) != receivers:
            raise RegistryError(f"model {r.ref}: expected a part for every party but its owner")
        if not set(r.owners) <= set(self.cons.names):
            raise RegistryError(f"model {r.ref}: a feature owner is not a party")

    # ------------------------------------------------------------ the models they make

    def versions(self) -> list[ModelVersion]:
        """Every published version with its effective status, by id then version."""
        staged = [self._staged(p) for p in sorted(self._publish.values(), key=_order)]
        champion = _last_claim(staged, CHAMPION)
        challenger = _last_claim(staged, CHALLENGER)
        out = []
        for version, (target, _) in staged:
            status = target
            if target in (CHAMPION, CHALLENGER) and version.publish not in (champion, challenger):
                status = CANDIDATE
            if target != RETIRED and not version.in_service:
                status = CANDIDATE
            out.append(_with_status(version, status))
        return out

    def version(self, model: str, version: int | None = None) -> ModelVersion | None:
        """`model@version`; without a version, the one of that id in service in the
        strongest role (champion, challenger, then the newest candidate)."""
        found = [v for v in self.versions() if v.id == model]
        if version is not None:
            return next((v for v in found if v.version == version), None)
        rank = {CHAMPION: 0, CHALLENGER: 1, CANDIDATE: 2}
        serving = [v for v in found if v.in_service and v.status in rank]
        serving.sort(key=lambda v: (rank[v.status], -v.version))
        return serving[0] if serving else None

    def champion(self) -> ModelVersion | None:
        return next((v for v in self.versions() if v.status == CHAMPION), None)

    def challenger(self) -> ModelVersion | None:
        return next((v for v in self.versions() if v.status == CHALLENGER), None)

    def decisions(self, author: str) -> Collection[Record]:
        """`author`'s approvals and refusals."""
        return [r for r in self.records.values() if r.author == author and r.kind != PUBLISH]

    def _staged(self, pub: Record) -> tuple[ModelVersion, tuple[str, Record]]:
        """The version with its approvals, and its owner's latest word: (status, record)."""
        latest: dict[str, Record] = {}
        for r in self._decisions_on(pub):
            if r.author not in latest or r.seq > latest[r.author].seq:
                latest[r.author] = r
        approved = tuple(a for a in approvers(pub) if a in latest and latest[a].kind == APPROVE)
        refused = {a: r.reason for a, r in latest.items() if r.kind == REFUSE}
        pending = tuple(a for a in approvers(pub) if a not in latest)
        version = ModelVersion(pub, CANDIDATE, approved, refused, pending)
        return version, self._target(pub)

    def _decisions_on(self, pub: Record) -> list[Record]:
        """The approvals and refusals of `pub`'s exact digest by the owners whose word counts."""
        return [
            r
            for r in self.records.values()
            if r.kind in (APPROVE, REFUSE)
            and (r.model, r.version, r.digest) == (pub.model, pub.version, pub.digest)
            and r.author in approvers(pub)
        ]

    def _target(self, pub: Record) -> tuple[str, Record]:
        """The status `pub`'s owner gave it last, and the record that said so."""
        said = [
            r
            for r in self.records.values()
            if r.kind == STATUS
            and r.author == pub.author
            and (r.model, r.version)
            == (
                pub.model,
                pub.version,
            )
        ]
        if not said:
            return pub.status, pub
        last = max(said, key=lambda r: r.seq)
        return last.status, last


def _order(r: Record) -> tuple[str, int]:
    return (r.model, r.version)


def _last_claim(staged: list[tuple[ModelVersion, tuple[str, Record]]], role: str) -> Record | None:
    """The publish record of the version in service whose owner gave it `role` last."""
    claims = [(why, v.publish) for v, (target, why) in staged if target == role and v.in_service]
    if not claims:
        return None
    return max(claims, key=lambda c: (c[0].ts, c[0].author, c[0].seq))[1]


def _with_status(v: ModelVersion, status: str) -> ModelVersion:
    return ModelVersion(v.publish, status, v.approved, v.refused, v.pending)
