"""A batch upload's applicant ids, from the request body in one of three media types:

- `text/csv`: a header `applicant_id`, then one id per row (that column only);
- `text/plain`: one id per line, as `mpc-credit score --batch FILE` reads (blank lines skipped);
- `application/x-ndjson` (or `application/jsonl`): one `{"applicant_id": ID}` per line.

UTF-8 only; each id 1 to 64 printable characters after surrounding spaces are stripped, listed
once, 1 to MAX_BATCH_IDS of them. Errors name the line (the CSV header is line 1) and never
quote more than the id at fault; they are 422 problems, an unknown media type 415.
"""

from __future__ import annotations

import csv
import io

from mpc_credit.api.problems import Problem
from mpc_credit.api.settings import MAX_BATCH_IDS
from mpc_credit.jsonwire import WireError, decode_object

CSV, TEXT, NDJSON = "text/csv", "text/plain", "application/x-ndjson"
MEDIA_TYPES = {
    CSV: CSV,
    TEXT: TEXT,
    NDJSON: NDJSON,
    "application/jsonl": NDJSON,
    "application/x-jsonlines": NDJSON,
}


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid-input", detail, title="Invalid input", kind="input")


def media_type(header: str | None) -> str:
    """The upload format of a Content-Type header; 415 for any other."""
    base = (header or "").split(";", 1)[0].strip().lower()
    kind = MEDIA_TYPES.get(base)
    if kind is None:
        raise Problem(
            415,
            "unsupported-media-type",
            f"upload ids as {', '.join(MEDIA_TYPES)}; got {base or 'no Content-Type'}",
        )
    return kind


def parse_ids(body: bytes, kind: str) -> list[str]:
    """The ids of an upload body of format `kind` (a value of MEDIA_TYPES)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid("the upload is not UTF-8 text") from None
    if kind == CSV:
        pairs = _csv_ids(text)
    elif kind == NDJSON:
        pairs = _jsonl_ids(text)
    else:
        pairs = [(n, line) for n, line in enumerate(text.splitlines(), start=1)]
    ids: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in pairs:
        aid = raw.strip()
        if not aid and kind != NDJSON:
            continue
        if not (0 < len(aid) <= 64 and aid.isprintable()):
            raise _invalid(f"line {line}: an applicant id is 1 to 64 printable characters")
        if aid in seen:
            raise _invalid(f"line {line}: applicant {aid!r} listed twice (line {seen[aid]})")
        seen[aid] = line
        ids.append(aid)
        if len(ids) > MAX_BATCH_IDS:
            raise _invalid(f"more than {MAX_BATCH_IDS} applicant ids in one batch")
    if not ids:
        raise _invalid("no applicant ids in the upload")
    return ids


def _csv_ids(text: str) -> list[tuple[int, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[tuple[int, str]] = []
    try:
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["applicant_id"]:
            raise _invalid("line 1: the CSV header must be the one column applicant_id")
        for row in reader:
            if not row:
                continue
            if len(row) != 1:
                raise _invalid(f"line {reader.line_num}: expected one column, got {len(row)}")
            out.append((reader.line_num, row[0]))
    except csv.Error as exc:
        raise _invalid(f"line {reader.line_num}: not valid CSV ({exc})") from None
    return out


def _jsonl_ids(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = decode_object(line, max_bytes=1024, max_depth=1)
        except WireError as exc:
            raise _invalid(f"line {n}: {exc}") from None
        if set(d) != {"applicant_id"} or not isinstance(d["applicant_id"], str):
            raise _invalid(f'line {n}: expected {{"applicant_id": "ID"}}')
        out.append((n, d["applicant_id"]))
    return out
