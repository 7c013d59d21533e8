"""Model registry records: what a party says about a model, signed with its own key.

The consortium file says who the parties are and who may publish models; the models
themselves live in records, each signed by the party that makes it, so that changing a
model never reissues a certificate or rewrites the consortium file:

- `publish` (by a model owner): model id and version, the SHA-256 digest of the full model,
  its feature owners and features, the modes and reveal policies it serves, the digest of
  every owner's part in every mode, and the status it is published as (`candidate`,
  `champion` or `challenger`);
- `approve` / `refuse` (by a feature owner of that model): its decision on that exact digest,
  a refusal with its reason;
- `status` (by the model's owner): `champion`, `challenger`, `candidate` or `retired`.

Every record carries its author's sequence number (1, 2, 3, ... per author) and a time;
`mpc_credit.consortium.registry` folds a set of records into the registry every party sees.
A record's signature covers its canonical JSON under its own label, so it can never pass for
a request, a status report or an audit line. `parse_record` is the one strict parser (exact
fields and types, safe names, bounded lists) for records from the broker, a file or a peer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium import fields as f
from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.fields import HEX64, SIGNATURE, MessageError
from mpc_credit.consortium.signing import sign, verify
from mpc_credit.jsonwire import encode
from mpc_credit.vocabulary import MODES, REVEALS

RECORD_LABEL = "mpc-credit/model-record@1"
PUBLISH, APPROVE, REFUSE, STATUS = "publish", "approve", "refuse", "status"
KINDS = (PUBLISH, APPROVE, REFUSE, STATUS)
CANDIDATE, CHAMPION, CHALLENGER, RETIRED = "candidate", "champion", "challenger", "retired"
PUBLISHED_AS = (CANDIDATE, CHAMPION, CHALLENGER)  # what a model may be published as
STATUSES = (*PUBLISHED_AS, RETIRED)
MAX_VERSION = 1_000_000
MAX_SEQ = 1_000_000_000
MAX_FEATURES = 256  # features of one model
MAX_RECORD_BYTES = 64 * 1024
MAX_SNAPSHOT_BYTES = 1 << 20  # one party's records on its registry topic
MAX_SNAPSHOT_RECORDS = 1000
MAX_TIME = 1e11

_BASE = frozenset({"type", "kind", "author", "seq", "ts", "model", "version", "digest", "sig"})
_FIELDS: Mapping[str, frozenset[str]] = {
    PUBLISH: frozenset({"owners", "features", "modes", "reveal", "parts", "status"}),
    APPROVE: frozenset(),
    REFUSE: frozenset({"reason"}),
    STATUS: frozenset({"status"}),
}


@dataclass(frozen=True)
class Record:
    """One verified registry record; the fields of other kinds keep their empty defaults."""

    kind: str
    author: str
    seq: int
    ts: float
    model: str
    version: int
    digest: str
    owners: tuple[str, ...] = ()  # publish: the feature owners, in the model's order
    features: tuple[str, ...] = ()  # publish: every feature's name (public model metadata)
    modes: tuple[str, ...] = ()  # publish
    reveal: tuple[str, ...] = ()  # publish: reveal policies it serves
    parts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # owner -> mode -> sha
    status: str = ""  # publish (published as) and status
    reason: str = ""  # refuse
    wire: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> str:
        """`ID@VERSION`, the way commands and messages name a model version."""
        return f"{self.model}@{self.version}"

    @property
    def key_model(self) -> tuple[str, int]:
        """The model version the record is about: (model id, version)."""
        return (self.model, self.version)

    @property
    def genesis(self) -> bool:
        """A model of the consortium file, not a signed record (sequence 0)."""
        return self.seq == 0

    @property
    def key(self) -> tuple[str, int]:
        """The record's place in its author's sequence: (author, seq)."""
        return (self.author, self.seq)


def make_record(
    key: Ed25519PrivateKey, kind: str, author: str, seq: int, **body: Any
) -> dict[str, Any]:
    """A signed record (as a JSON object) of `kind` by `author`, dated now."""
    if kind not in KINDS or not set(body) <= (_BASE | _FIELDS[kind]):
        raise ValueError(f"record: kind {kind!r}, fields {sorted(body)}")
    message = {"type": "model-record", "kind": kind, "author": author, "seq": seq, **body}
    message.setdefault("ts", time.time())
    return sign(RECORD_LABEL, message, key)


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """The record's wire encoding (one line of JSON)."""
    return encode(dict(record))


def parse_record(payload: bytes | str | Mapping[str, Any], cons: Consortium) -> Record:
    """The verified record in `payload`, else MessageError with a short reason: schema first,
    then the signature of the author it names."""
    d = (
        dict(payload)
        if isinstance(payload, Mapping)
        else f.load(payload, max_bytes=MAX_RECORD_BYTES)
    )
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise MessageError(f"field 'kind': expected one of {', '.join(KINDS)}")
    f.exact(d, _BASE, _FIELDS[kind])
    f.constant(d, "type", "model-record")
    author = f.name(d, "author", cons.names)
    f.token(d, "sig", SIGNATURE, "an Ed25519 signature")
    if not verify(RECORD_LABEL, d, cons.party(author).public_key):
        raise MessageError(f"a {kind} record not signed by {author}, its author")
    record = Record(
        kind=kind,
        author=author,
        seq=f.integer(d, "seq", 1, MAX_SEQ),
        ts=f.real(d, "ts", 0.0, MAX_TIME),
        model=f.safe_name(d, "model"),
        version=f.integer(d, "version", 1, MAX_VERSION),
        digest=f.token(d, "digest", HEX64, "a SHA-256 hex digest"),
        wire=d,
    )
    return _with_kind_fields(record, d, cons)


def _with_kind_fields(record: Record, d: Mapping[str, Any], cons: Consortium) -> Record:
    """`record` with the fields its kind carries, each checked."""
    if record.kind == REFUSE:
        return replace(record, reason=f.text(d, "reason"))
    if record.kind == STATUS:
        return replace(record, status=f.choice(d, "status", STATUSES))
    if record.kind != PUBLISH:
        return record
    owners = _names(d, "owners", cons.names, MAX_FEATURES)
    modes = _choices(d, "modes", MODES)
    return replace(
        record,
        owners=owners,
        features=_safe_names(d, "features"),
        modes=modes,
        reveal=_choices(d, "reveal", REVEALS),
        parts=_parts(d, cons.names, modes),
        status=f.choice(d, "status", PUBLISHED_AS),
    )


def _list(d: Mapping[str, Any], key: str, max_count: int) -> list[Any]:
    v = d[key]
    if not isinstance(v, list) or not 0 < len(v) <= max_count or len(set(map(str, v))) != len(v):
        raise MessageError(f"field {key!r}: expected a list of 1 to {max_count} distinct values")
    return v


def _names(d: Mapping[str, Any], key: str, names: Sequence[str], n: int) -> tuple[str, ...]:
    values = _list(d, key, n)
    if not all(isinstance(v, str) and v in names for v in values):
        raise MessageError(f"field {key!r}: not a party of the consortium")
    return tuple(values)


def _choices(d: Mapping[str, Any], key: str, choices: Sequence[str]) -> tuple[str, ...]:
    values = _list(d, key, len(choices))
    if not all(isinstance(v, str) and v in choices for v in values):
        raise MessageError(f"field {key!r}: expected values among {', '.join(choices)}")
    return tuple(values)


def _safe_names(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _list(d, key, MAX_FEATURES)
    return tuple(f.safe_name({key: v}, key) for v in values)


def _parts(
    d: Mapping[str, Any], names: Sequence[str], modes: Sequence[str]
) -> dict[str, dict[str, str]]:
    """party -> mode -> the SHA-256 of that party's part: parties of the consortium, one
    digest per mode each (which parties must be there is the registry's rule)."""
    v = d["parts"]
    if not isinstance(v, dict) or not 0 < len(v) <= len(names) or not set(v) <= set(names):
        raise MessageError("field 'parts': expected an entry per party of the consortium")
    out: dict[str, dict[str, str]] = {}
    for party, per in v.items():
        if not isinstance(per, dict) or set(per) != set(modes):
            raise MessageError("field 'parts': expected one digest per mode for each party")
        out[party] = {m: f.token(per, m, HEX64, "a SHA-256 hex digest") for m in modes}
    return out


def snapshot(party: str, records: Sequence[Record]) -> bytes:
    """The retained message on `party`'s registry topic: every record it authored, in order
    (each signed on its own; the list is only their envelope)."""
    own = sorted((r for r in records if r.author == party and not r.genesis), key=lambda r: r.seq)
    return encode({"type": "registry", "party": party, "records": [dict(r.wire) for r in own]})


def decode_snapshot(payload: bytes | str, cons: Consortium, party: str) -> list[Record]:
    """The records in `party`'s registry snapshot (party from the topic): each verified and
    authored by `party`; else MessageError (one record wrong, none taken)."""
    d = f.load(payload, max_bytes=MAX_SNAPSHOT_BYTES)
    f.exact(d, {"type", "party", "records"})
    f.constant(d, "type", "registry")
    if f.name(d, "party", cons.names) != party:
        raise MessageError("field 'party': not the party of the topic")
    raw = d["records"]
    if not isinstance(raw, list) or len(raw) > MAX_SNAPSHOT_RECORDS:
        raise MessageError(f"field 'records': expected a list of at most {MAX_SNAPSHOT_RECORDS}")
    records = [parse_record(_obj(r), cons) for r in raw]
    if any(r.author != party for r in records):
        raise MessageError("field 'records': a record of another party")
    return records


def _obj(v: Any) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise MessageError("field 'records': expected JSON objects")
    return v
