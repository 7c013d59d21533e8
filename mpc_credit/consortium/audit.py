"""A party's tamper-evident audit trail: signed, hash-chained JSON lines, on disk before use.

Each line is one JSON object in canonical form (sorted keys, no spaces, ASCII), then a newline:
`seq` counts lines from 1, `prev` is the SHA-256 (hex) of the previous line's bytes without its
newline (GENESIS for line 1), `party` and `ts` say who wrote it when (never earlier than the
line before: the writer stamps max(now, the last ts)), `record` is what happened, and `sig` is
the party's Ed25519 signature over the rest under AUDIT_LABEL. Altering a byte breaks a line's
signature or its canonical form; removing, inserting or reordering lines breaks `seq` or
`prev`: `verify` names the first line that is altered, missing, out of order, incomplete or
backdated (its ts before the previous line's). A chain alone cannot show lines cut off the
end, nor a log its party re-signed with its own key: the other parties record this party's
head (`AuditLog.head`, carried by its status reports) in their own logs, and
mpc_credit.consortium.crosscheck checks a log against them.

`AuditLog.append` writes a line and fsyncs it before it returns, so the daemon records an
accepted session before the session runs (write-ahead): a crash loses neither its nonce nor
its budget entry. When the line cannot be written (a full disk, an I/O error) the file is cut
back to its last complete line and `AuditError` is raised: the session does not run unaudited,
and the log still verifies. One process writes a log at a time (an exclusive lock).

Records never hold a feature value, a share or a result: `session_record` writes a fixed set of
request facts (a refused request's ids only as their count and SHA-256), `train_record` a
training request's public parameters, `rejected_record` a bounded summary of a payload that
failed parsing or its signature check, never the payload itself.

One module on purpose (about 580 lines): the writer, the reader and the verifier must agree
byte for byte on the line format, and the record builders are what makes that format safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.messages import audit_head, ids_digest
from mpc_credit.consortium.signing import sign
from mpc_credit.consortium.signing import verify as verify_signature
from mpc_credit.errors import KINDS, SessionError, UsageError
from mpc_credit.files import fsync_dir
from mpc_credit.jsonwire import MAX_BYTES, WireError, decode_object

if TYPE_CHECKING:
    from mpc_credit.consortium.messages import Request
    from mpc_credit.consortium.publish_request import PublishRequest
    from mpc_credit.consortium.train_request import TrainRequest

AUDIT_LABEL = "mpc-credit/audit@1"
GENESIS = "0" * 64
MAX_LINE = 256 * 1024  # a request's record is bounded by the wire limit (64 KB) and then some
MAX_REASON = 200
MAX_TOPIC = 200
ENVELOPE = frozenset({"party", "prev", "record", "seq", "sig", "ts"})
OUTCOMES = ("accepted", "applicants", "refused", "done", "aborted", "rejected")

# session_record's keys: the request's facts (`ids` only when the request listed them inline),
# and the optional facts of how it ended, each with the only type it may have.
SESSION_FIELDS = frozenset(
    [
        "session",
        "outcome",
        "reason",
        "requester",
        "receiver",
        "model_id",
        "model_digest",
        "mode",
        "reveal",
        "count",
        "batch_digest",
        "ids",
        "ids_sha256",
        "nonce",
        "request_ts",
        "deadline",
    ]
)
SESSION_EXTRAS = {
    "kind": lambda v: v in KINDS,
    "seconds": lambda v: type(v) in (int, float),
    "port": lambda v: type(v) is int,
    "received": lambda v: type(v) is bool,
    "heads": lambda v: _is_heads(v),
    # aborted: the parties that did not connect within connect_seconds (daemon/stalls.py)
    "stalled": lambda v: type(v) is list and all(type(p) is str and len(p) <= 32 for p in v),
}
# train_record's keys: a training request's public facts (its job's parameters, the epsilon
# charged to each party's privacy ledger, `dp`: false for a run without DP, whose owners all
# receive exact statistics), never a feature value, a count, a coefficient or the model; the
# same optional facts of how it ended.
TRAIN_RECORD_FIELDS = frozenset(
    [
        "session",
        "outcome",
        "reason",
        "job",
        "requester",
        "model_name",
        "label",
        "epsilon",
        "dp",
        "bins",
        "cutoff",
        "nonce",
        "request_ts",
        "deadline",
    ]
)
# publish_record's keys: a publish request's public facts (the version as ID@VERSION, its
# digest, the status it is published as), never a bin edge or a point.
PUBLISH_RECORD_FIELDS = frozenset(
    [
        "session",
        "outcome",
        "reason",
        "job",
        "requester",
        "model_id",
        "model_digest",
        "status",
        "nonce",
        "request_ts",
        "deadline",
    ]
)
REJECTED_FIELDS = frozenset(
    {"outcome", "topic", "size", "sha256", "reason", "claimed_requester", "claimed_session"}
)
_CLAIMED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CLAIMED_SESSION = re.compile(r"^[0-9a-f]{32}$")


class AuditError(SessionError):
    """The audit log cannot be opened, continued or written: no session runs unaudited."""


# ------------------------------------------------------------------ records


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, lone surrogates replaced (they cannot be read back)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_heads(value: Any) -> bool:
    """`heads`: {party: [seq, hash]}, the audit heads other parties reported in a session."""
    if not isinstance(value, dict):
        return False
    try:
        for head in value.values():
            audit_head(head)
    except MessageError:
        return False
    return all(isinstance(party, str) and _CLAIMED_NAME.match(party) for party in value)


def _check_session_facts(builder: str, outcome: str, fields: Mapping[str, Any]) -> None:
    """A session's outcome and its optional facts, each of the only type it may have."""
    if outcome not in OUTCOMES or outcome in ("applicants", "rejected"):
        raise ValueError(f"{builder}: unknown outcome {outcome!r}")
    for name, value in fields.items():
        check = SESSION_EXTRAS.get(name)
        if check is None or not check(value):
            raise ValueError(f"{builder}: {name!r} is not an audit field of that type")


def session_record(req: Request, outcome: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """What a party records of a session request: its facts, never a feature value or result.

    Inline ids are listed, except in a `refused` record: it holds their SHA-256 (`ids_sha256`,
    as `messages.ids_digest`) and `count` only. `fields` may only be `kind` (an error kind),
    `seconds`, `port`, `received` (a bool), `heads` ({party: [seq, hash]}) and `stalled`
    (party names).
    """
    _check_session_facts("session_record", outcome, fields)
    rec: dict[str, Any] = {
        "session": req.session,
        "outcome": outcome,
        "reason": _clip(reason, MAX_REASON),
        "requester": req.requester,
        "receiver": req.receiver,
        "model_id": req.model_id,
        "model_digest": req.model_digest,
        "mode": req.mode,
        "reveal": req.reveal,
        "count": req.count,
        "batch_digest": req.batch_digest,
        "nonce": req.nonce,
        "request_ts": req.ts,
        "deadline": req.deadline,
        **fields,
    }
    if req.ids is not None and outcome == "refused":
        rec["ids_sha256"] = ids_digest(req.ids)
    elif req.ids is not None:
        rec["ids"] = list(req.ids)
    return rec


def train_record(
    req: TrainRequest, outcome: str, reason: str = "", **fields: Any
) -> dict[str, Any]:
    """What a party records of a training request: its public facts (`job` = "train"), with
    the same outcomes and optional `fields` as `session_record`."""
    _check_session_facts("train_record", outcome, fields)
    job = req.job
    return {
        "session": req.session,
        "outcome": outcome,
        "reason": _clip(reason, MAX_REASON),
        "job": "train",
        "requester": req.requester,
        "model_name": job.name,
        "label": job.label,
        "epsilon": job.epsilon,
        "dp": job.epsilon is not None,
        "bins": job.bins,
        "cutoff": job.cutoff,
        "nonce": req.nonce,
        "request_ts": req.ts,
        "deadline": req.deadline,
        **fields,
    }


def publish_record(
    req: PublishRequest, outcome: str, reason: str = "", **fields: Any
) -> dict[str, Any]:
    """What a party records of a publish request (`job` = "publish"): the version and its
    digest, with the same outcomes and optional `fields` as `session_record`."""
    _check_session_facts("publish_record", outcome, fields)
    return {
        "session": req.session,
        "outcome": outcome,
        "reason": _clip(reason, MAX_REASON),
        "job": "publish",
        "requester": req.requester,
        "model_id": req.record.ref,
        "model_digest": req.record.digest,
        "status": req.record.status,
        "nonce": req.nonce,
        "request_ts": req.ts,
        "deadline": req.deadline,
        **fields,
    }


def rejected_record(topic: str, payload: bytes, reason: str) -> dict[str, Any]:
    """A bounded summary of a payload that failed parsing or its signature check.

    Its size and SHA-256, the requester and session it claims when they parse and look like
    names, the reason: never the payload's bytes, so the record stays under 1 KB.
    """
    rec: dict[str, Any] = {
        "outcome": "rejected",
        "topic": _clip(topic, MAX_TOPIC),
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "reason": _clip(reason, MAX_REASON),
    }
    claims: Mapping[str, Any] = {}
    if len(payload) <= MAX_BYTES:
        with contextlib.suppress(WireError):
            claims = decode_object(payload)
    requester, session = claims.get("requester"), claims.get("session")
    if isinstance(requester, str) and _CLAIMED_NAME.match(requester):
        rec["claimed_requester"] = requester
    if isinstance(session, str) and _CLAIMED_SESSION.match(session):
        rec["claimed_session"] = session
    return rec


# ------------------------------------------------------------------ lines


def encode_line(line: Mapping[str, Any]) -> bytes:
    """A line's canonical bytes (without the newline); ValueError for NaN or Infinity."""
    text = json.dumps(
        line, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def line_hash(raw: bytes) -> str:
    """What the next line's `prev` holds."""
    return hashlib.sha256(raw).hexdigest()


def check_line(raw: bytes, public: Ed25519PublicKey) -> tuple[dict[str, Any] | None, str]:
    """(the line, "") if `raw` is a canonical audit line signed by `public`, else (None, why)."""
    try:
        line = decode_object(raw, max_bytes=MAX_LINE)
    except WireError as exc:
        return None, str(exc)
    if set(line) != ENVELOPE:
        return None, "not an audit line (its fields are not " + ", ".join(sorted(ENVELOPE)) + ")"
    seq = line["seq"]
    if type(seq) is not int or seq < 1 or not isinstance(line["prev"], str):
        return None, "seq or prev malformed"
    if not isinstance(line["record"], dict):
        return None, "record is not an object"
    if type(line["ts"]) not in (int, float):
        return None, "ts is not a number"
    if encode_line(line) != raw:
        return None, "not in canonical form"
    if not verify_signature(AUDIT_LABEL, line, public):
        return None, "signature does not match"
    return line, ""


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes | None, bool]]:
    """(line number, bytes without the newline or None when over MAX_LINE, newline-ended)."""
    number = 0
    while chunk := fh.readline(MAX_LINE + 1):
        number += 1
        if chunk.endswith(b"\n"):
            yield number, chunk[:-1], True
        elif len(chunk) <= MAX_LINE:
            yield number, chunk, False  # the file ends inside this line
        else:
            ended = False
            while more := fh.readline(MAX_LINE + 1):
                if more.endswith(b"\n"):
                    ended = True
                    break
            yield number, None, ended


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UsageError(f"{path}: no audit log (has this party's daemon run yet?)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the audit log: {exc.strerror}") from None


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record that parses, with its line's `seq`, `ts` and `party`; nothing verified.

    Tolerant on purpose (rebuilding nonces and budgets after a restart must not stop at a bad
    line: `verify` is the check); an absent log has no records.
    """
    path = Path(path)
    if not path.exists():
        return
    with _open(path) as fh:
        for _number, raw, ended in _lines(fh):
            if raw is None or not ended:
                continue
            try:
                line = decode_object(raw, max_bytes=MAX_LINE)
            except WireError:
                continue
            record = line.get("record")
            if isinstance(record, dict):
                yield {
                    **record,
                    "seq": line.get("seq"),
                    "ts": line.get("ts"),
                    "party": line.get("party"),
                }


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """`iter_records` as a list."""
    return list(iter_records(path))


# ------------------------------------------------------------------ verifying


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of `verify`: how many lines are good, and the first bad one if any."""

    lines: int  # lines checked and found good, from the first
    head: str  # the hash of the last good line (GENESIS for an empty log)
    bad_line: int | None = None  # 1-based line number
    problem: str = ""  # altered | missing | out of order | incomplete | backdated
    detail: str = ""
    hashes: Mapping[int, str] = field(default_factory=dict)  # seq: hash, of the seqs kept

    @property
    def ok(self) -> bool:
        return self.bad_line is None

    @property
    def message(self) -> str:
        if self.ok:
            return f"{self.lines} lines, chain and signatures intact (head sha256 {self.head})"
        return f"line {self.bad_line} is {self.problem}: {self.detail}"


def verify(path: str | Path, public: Ed25519PublicKey, keep: Collection[int] = ()) -> VerifyResult:
    """Check every line's form and signature, `seq`, `prev` and that `ts` never decreases;
    name the first bad line. The hashes of the good lines whose seq is in `keep` are kept."""
    path = Path(path)
    expected, prev, ts = 1, GENESIS, 0.0
    hashes: dict[int, str] = {}
    with _open(path) as fh:
        for number, raw, ended in _lines(fh):
            problem, detail, ts = _misfit(fh, raw, ended, public, expected, (prev, ts))
            if problem:
                return VerifyResult(number - 1, prev, number, problem, detail, hashes)
            assert raw is not None
            expected, prev = expected + 1, line_hash(raw)
            if number in keep:
                hashes[number] = prev
    return VerifyResult(expected - 1, prev, hashes=hashes)


def _misfit(
    fh: IO[bytes],
    raw: bytes | None,
    ended: bool,
    public: Ed25519PublicKey,
    expected: int,
    before: tuple[str, float],
) -> tuple[str, str, float]:
    """(problem, detail, ts) of a line expected to carry seq `expected` after the line of
    hash and ts `before`: its ts never earlier than that line's."""
    if raw is None:
        return "altered", f"longer than {MAX_LINE} bytes", 0.0
    if not ended:
        return "incomplete", "the file ends inside it (truncated or a torn write)", 0.0
    line, why = check_line(raw, public)
    if line is None:
        return "altered", why, 0.0
    seq, ts = line["seq"], line["ts"]
    if seq < expected:
        return "out of order", f"seq {seq} comes after seq {expected - 1}", ts
    if seq > expected and _seq_later(fh, expected):
        return "out of order", f"seq {seq} stands where seq {expected} belongs (found later)", ts
    if seq > expected:
        return "missing", f"seq {seq} stands where seq {expected} belongs: line(s) removed", ts
    if line["prev"] != before[0]:
        return "altered", "its prev hash does not match the line before it", ts
    if ts < before[1]:
        return "backdated", _backdated(seq, ts, before[1]), ts
    return "", "", ts


def _backdated(seq: int, ts: float, before: float) -> str:
    """The detail of a line dated before the line it follows."""
    return (
        f"seq {seq} is dated {utc(ts)}, before seq {seq - 1}'s {utc(before)} "
        "(timestamps never run backwards)"
    )


def utc(ts: float) -> str:
    """`ts` (unix seconds) as an ISO 8601 UTC time to the second; the number if out of range."""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ts} (unix seconds)"


def _seq_later(fh: IO[bytes], seq: int) -> bool:
    """Whether a line further on in `fh` carries `seq` (a reordering rather than a gap)."""
    for _number, raw, _ended in _lines(fh):
        try:
            if raw is not None and decode_object(raw, max_bytes=MAX_LINE).get("seq") == seq:
                return True
        except WireError:
            continue
    return False


# ------------------------------------------------------------------ writing


class AuditLog:
    """One party's audit log open for appending; continues the chain already on disk.

    Use as a context manager or call `close`. The file is created mode 0600 (its folder 0700)
    and locked: a second writer gets `AuditError`. Opening refuses a log whose last line is
    incomplete or not signed by `key`, rather than continue a chain it cannot vouch for.
    """

    def __init__(self, path: str | Path, party: str, key: Ed25519PrivateKey) -> None:
        self.path, self.party, self.key = Path(path), party, key
        self._public = key.public_key()
        self._fd: int | None = None
        self._torn = False  # a failed write could not be cut back yet
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot open the audit log: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AuditError(f"{self.path}: another process is writing this audit log") from None
        self._fd = fd
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            fsync_dir(self.path.parent)
            self._size = os.fstat(fd).st_size
        except OSError as exc:
            self.close()
            raise AuditError(f"{self.path}: cannot open the audit log: {exc.strerror}") from None
        try:
            self.seq, self.prev, self.ts = self._tail()
        except AuditError:
            self.close()
            raise

    def _tail(self) -> tuple[int, str, float]:
        """The last line's seq, hash and ts, after checking it is whole and ours."""
        assert self._fd is not None
        if self._size == 0:
            return 0, GENESIS, 0.0
        start = max(0, self._size - MAX_LINE - 1)
        try:
            data = os.pread(self._fd, self._size - start, start)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot read the audit log: {exc.strerror}") from None
        if not data.endswith(b"\n"):
            raise AuditError(
                f"{self.path}: the last line is incomplete (truncated or a torn write); "
                "check it with `mpc-credit audit verify` and move the log aside"
            )
        cut = data.rfind(b"\n", 0, len(data) - 1)
        line, why = check_line(data[cut + 1 : -1], self._public)
        if line is None or (cut < 0 and start > 0):
            raise AuditError(
                f"{self.path}: the last line is not {self.party}'s audit line "
                f"({why or 'too long'}); check it with `mpc-credit audit verify`"
            )
        return line["seq"], line_hash(data[cut + 1 : -1]), line["ts"]

    def append(self, record: Mapping[str, Any], *, durable: bool = True) -> None:
        """Write one record as the next line, on disk (fsync) before returning if `durable`.

        Raises AuditError when the line cannot be written; the file is then cut back to its
        last complete line. Records may not use the line's own names `seq`, `ts`, `party`.
        """
        if self._fd is None:
            raise AuditError(f"{self.path}: the audit log is closed")
        clash = {"seq", "ts", "party"} & set(record)
        if clash:
            raise ValueError(f"audit record uses reserved names {sorted(clash)}")
        body = {
            "party": self.party,
            "prev": self.prev,
            "record": dict(record),
            "seq": self.seq + 1,
            "ts": max(time.time(), self.ts),  # never before the line it follows
        }
        try:
            raw = encode_line(sign(AUDIT_LABEL, body, self.key))
        except (TypeError, ValueError) as exc:
            raise AuditError(f"{self.path}: record cannot be written as JSON: {exc}") from None
        _line, why = check_line(raw, self._public)  # every line written must verify
        if why:
            raise AuditError(f"{self.path}: record cannot be audited: {why}")
        try:
            if self._torn:
                self._cut_back()
            _write_all(self._fd, raw + b"\n")
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            self._torn = True
            with contextlib.suppress(OSError):
                self._cut_back()
            raise AuditError(f"{self.path}: cannot write the audit log: {exc.strerror}") from None
        self._size += len(raw) + 1
        self.seq, self.prev, self.ts = self.seq + 1, line_hash(raw), body["ts"]

    def _cut_back(self) -> None:
        """Drop whatever a failed write left after the last complete line."""
        assert self._fd is not None
        os.ftruncate(self._fd, self._size)
        os.fsync(self._fd)
        self._torn = False

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last line written: what this party's status reports carry."""
        return self.seq, self.prev

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
