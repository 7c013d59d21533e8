"""Alignment of the lender's training rows with one owner's rows by ECDH private set intersection.

openmined-psi (ECDH over P-256) does the cryptography; this module only orders the steps and
checks what crosses. The lender is the PSI client, the owner the server:

1. lender -> owner  `request`: the lender's ids, each hashed and raised to the lender's secret
   key. The owner learns how many training rows the lender has, nothing else.
2. owner -> lender  `setup` + `response`: the owner's ids under the owner's key (RAW: exact, no
   false positives), and the lender's request raised to the owner's key too. The lender learns
   which of its rows the owner knows (the intersection) and how many ids the owner has.
3. lender -> owner  `positions`: for each intersection id, its position in the lender's row
   order (the lender shuffles its rows first, so a position says nothing about the id).
   The owner learns the intersection and n, never a lender id outside the intersection: the
   message carries intersection ids only, and the owner refuses any id it does not hold.

Messages are bytes (protobuf or the small `positions` encoding below), so they can travel over
any link. Threat model: semi-honest; a lender that lies in step 3 can only name ids the owner
holds (refused otherwise). Every function is a pure step; tests run both sides in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mpc_credit.errors import DataError, SessionError

MAX_MESSAGE = 64 * 1024 * 1024  # bytes: about 1.5 million ids per PSI message
MAX_ID = 256  # bytes in one applicant id (UTF-8)
# A lender's request may name at most REQUEST_FACTOR times the owner's own row count of ids
# (at least REQUEST_FLOOR, never more than MAX_REQUEST_IDS): anything larger is refused before
# any PSI work, since the owner's answer costs it time in proportion to the request.
REQUEST_FACTOR = 10
REQUEST_FLOOR = 10_000
MAX_REQUEST_IDS = 1_000_000
ELEMENT_BYTES = 35  # one encrypted id in a serialized request: tag, length, 33-byte P-256 point


def _psi():
    try:
        import private_set_intersection.python as psi
    except ImportError as exc:  # pragma: no cover - the training extra is not installed
        raise SessionError(
            "training needs openmined-psi, a dependency of mpc-credit: reinstall mpc-credit"
        ) from exc
    return psi


def _parse(cls, blob: bytes, what: str):
    if not isinstance(blob, bytes) or len(blob) > MAX_MESSAGE:
        raise SessionError(f"alignment: {what} is not bytes of at most {MAX_MESSAGE}")
    try:
        return cls.FromString(blob)
    except Exception as exc:  # protobuf's DecodeError
        raise SessionError(f"alignment: {what} is not a valid PSI message") from exc


@dataclass
class LenderSide:
    """The lender's PSI client over its training ids, in its row order."""

    ids: tuple[str, ...]
    client: object

    @classmethod
    def start(cls, ids: Sequence[str]) -> tuple[LenderSide, bytes]:
        """Step 1: the lender's state and its request message."""
        _check_ids(ids, "lender")
        client = _psi().client.CreateWithNewKey(True)
        request = client.CreateRequest(list(ids)).SerializeToString()
        return cls(tuple(ids), client), request

    def intersect(self, setup: bytes, response: bytes) -> np.ndarray:
        """Step 2 at the lender: sorted positions (in its rows) of the ids the owner holds."""
        psi = _psi()
        s = _parse(psi.ServerSetup, setup, "server setup")
        r = _parse(psi.Response, response, "server response")
        try:
            found = self.client.GetIntersection(s, r)
        except Exception as exc:
            raise SessionError(
                "alignment: the owner's PSI answer does not fit the request"
            ) from exc
        return np.unique(np.asarray(found, dtype=np.int64))

    def positions(self, found: np.ndarray) -> bytes:
        """Step 3: `position<TAB>id` lines for the intersection only."""
        lines = (f"{int(i)}\t{self.ids[int(i)]}" for i in found)
        return "\n".join(lines).encode()


@dataclass(frozen=True)
class Alignment:
    """The owner's view: row of the owner's table for each lender row, -1 where unknown."""

    n: int
    owner_rows: np.ndarray  # shape (n,), int64
    ids: tuple[str, ...]  # the intersection ids, in lender order

    @property
    def known(self) -> np.ndarray:
        return self.owner_rows >= 0


def request_limit(own_rows: int) -> int:
    """The most ids a lender's request may name to an owner with `own_rows` rows."""
    return min(MAX_REQUEST_IDS, max(REQUEST_FLOOR, REQUEST_FACTOR * own_rows))


def check_request_size(request: object, own_rows: int) -> int:
    """The limit for a request to an owner of `own_rows` rows; SessionError (a public reason)
    when the serialized `request` is larger than that many ids can be. Reads only its length."""
    limit = request_limit(own_rows)
    if not isinstance(request, bytes):
        raise SessionError("alignment: the lender's request is not bytes")
    if len(request) > ELEMENT_BYTES * limit + 16:
        raise SessionError(
            f"alignment: the lender's request of about {len(request) // ELEMENT_BYTES} ids "
            f"exceeds this party's limit of {limit} ids ({REQUEST_FACTOR} times its "
            f"{own_rows} rows, at least {REQUEST_FLOOR}, at most {MAX_REQUEST_IDS})"
        )
    return limit


def owner_answer(owner_ids: Sequence[str], request: bytes) -> tuple[bytes, bytes, int]:
    """Step 2 at the owner: (setup, response, n) for the lender's request of n ids.

    A request over `request_limit(len(owner_ids))` ids is refused before any PSI work."""
    limit = check_request_size(request, len(owner_ids))
    _check_ids(owner_ids, "owner")
    psi = _psi()
    req = _parse(psi.Request, request, "lender request")
    n = len(req.encrypted_elements)
    if n > limit:
        raise SessionError(
            f"alignment: the lender's request of {n} ids exceeds this party's limit of {limit}"
        )
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, n, list(owner_ids), psi.DataStructure.RAW)
    try:
        response = server.ProcessRequest(req)
    except Exception as exc:
        raise SessionError("alignment: the lender's request is malformed") from exc
    return setup.SerializeToString(), response.SerializeToString(), n


def owner_alignment(owner_ids: Sequence[str], n: int, positions: bytes) -> Alignment:
    """Step 3 at the owner: its rows in the lender's order; ids it does not hold are refused."""
    if len(positions) > MAX_MESSAGE:
        raise SessionError("alignment: positions message too large")
    where = {i: r for r, i in enumerate(owner_ids)}
    rows = np.full(n, -1, dtype=np.int64)
    ids = []
    text = positions.decode("utf-8", errors="strict") if positions else ""
    for k, line in enumerate(text.split("\n") if text else []):
        pos, sep, ident = line.partition("\t")
        if not sep or not pos.isdigit() or int(pos) >= n or ident not in where:
            raise SessionError(f"alignment: positions line {k + 1} names no id of this owner")
        if rows[int(pos)] >= 0:
            raise SessionError(f"alignment: positions line {k + 1} repeats position {pos}")
        rows[int(pos)] = where[ident]
        ids.append((int(pos), ident))
    ids.sort()
    return Alignment(n, rows, tuple(i for _, i in ids))


def _check_ids(ids: Sequence[str], who: str) -> None:
    if len(set(ids)) != len(ids):
        raise DataError(f"alignment: the {who}'s ids are not unique")
    for i in ids:
        if not i or len(i.encode()) > MAX_ID or "\t" in i or "\n" in i:
            raise DataError(f"alignment: the {who} has an unusable id {i[:40]!r}")
