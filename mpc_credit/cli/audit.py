"""`mpc-credit audit`: check and read a party's tamper-evident audit log.

`verify` exits 0 when every line is intact, 6 (AuditIntegrityError) naming the first line
that is altered, missing, out of order, incomplete or backdated, or (`--against`) the first
audit head another party's log recorded that this log does not hold; 2 for a bad
configuration or no log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mpc_credit.cli import options

if TYPE_CHECKING:
    from mpc_credit.consortium.audit import VerifyResult
    from mpc_credit.consortium.config import Consortium

audit_app = typer.Typer(help="A party's tamper-evident audit log.", no_args_is_help=True)

CONFIG_HELP = "This party's party.toml (names the audit file and the consortium)."
COLUMNS = ("seq", "time (UTC)", "outcome", "session", "requester", "count", "reason")
SESSION_SHOWN = 8  # hex digits of a session id in the table; --json has all 32


@audit_app.command("verify")
def verify_command(
    config: Annotated[Path, typer.Option(help=CONFIG_HELP)],
    log: Annotated[
        Path | None,
        typer.Argument(
            metavar="LOG", help="The audit log to check (default: the one --config names)."
        ),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another party's audit log (repeatable): LOG must hold every audit head it "
            "recorded of LOG's party."
        ),
    ] = None,
) -> None:
    """Check an audit log: its hash chain, each line's signature, time never running back.

    With --against, also that it holds every audit head the other logs recorded of its
    party: a cut tail or a log re-signed from scratch shows there.

    Exits 6 naming the first bad line or the first recorded head it does not hold.

    Example: mpc-credit audit verify bank/audit.jsonl --config bank/party.toml --against telco.jsonl
    """
    from mpc_credit.consortium.config import load_consortium, load_party_config
    from mpc_credit.consortium.crosscheck import divergence, log_party, recorded_heads
    from mpc_credit.errors import AuditIntegrityError

    cfg = load_party_config(config)
    cons = load_consortium(cfg.consortium_file)
    path = log if log is not None else cfg.audit
    party = (log_party(path) if log is not None else None) or cfg.party
    heads = [h for other in against or () for h in recorded_heads(other, party)]
    result = _verified(path, party, cons, {h.seq for h in heads})
    for other in against or ():
        _verified(other, log_party(other) or "", cons)
    problem = divergence(result.lines, result.hashes, heads)
    if problem:
        raise AuditIntegrityError(f"{path}: {problem}")
    typer.echo(f"{path}: {result.message}")
    if against:
        typer.echo(f"{path}: holds all {len(heads)} audit head(s) the other logs recorded")


def _verified(
    path: Path, party: str, cons: Consortium, keep: set[int] | None = None
) -> VerifyResult:
    """The VerifyResult of `path` by `party`'s key in `cons`; AuditIntegrityError if bad."""
    from mpc_credit.consortium.audit import verify
    from mpc_credit.errors import AuditIntegrityError, UsageError

    if party not in cons.names:
        raise UsageError(f"{path}: party {party!r} is not in the consortium")
    result = verify(path, cons.party(party).public_key, keep or ())
    if not result.ok:
        raise AuditIntegrityError(f"{path}: {result.message}")
    return result


@audit_app.command("show")
def show_command(
    config: Annotated[Path, typer.Option(help=CONFIG_HELP)],
    since: Annotated[
        str | None,
        typer.Option(help="Only lines written from then on: unix seconds or ISO 8601 (UTC)."),
    ] = None,
    requester: Annotated[str | None, typer.Option(help="Only this requester's sessions.")] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            help="Only this outcome: accepted | applicants | done | refused | aborted | rejected."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of a table.")
    ] = False,
) -> None:
    """Print the audit log's records as a table, oldest first (nothing is verified here).

    Example: mpc-credit audit show --config parties/bank/party.toml --outcome refused --json
    """
    from mpc_credit.consortium.audit import OUTCOMES, iter_records
    from mpc_credit.consortium.config import load_party_config

    start = _since(since) if since is not None else None
    wanted = options.choice(outcome, OUTCOMES, "--outcome") if outcome is not None else None
    cfg = load_party_config(config)
    records = (
        r
        for r in iter_records(cfg.audit)
        if (start is None or _number(r.get("ts")) >= start)
        and (requester is None or r.get("requester") == requester)
        and (wanted is None or r.get("outcome") == wanted)
    )
    if as_json:
        for r in records:
            typer.echo(json.dumps(r, sort_keys=True))  # escapes control and non-ASCII chars
    else:
        _table(records)


def _since(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC unless it names its zone)."""
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(
                "not unix seconds or an ISO 8601 time", param_hint="--since"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if not math.isfinite(value):
        raise typer.BadParameter("must be a finite number", param_hint="--since")
    return value


def _number(value: Any) -> float:
    return float(value) if type(value) in (int, float) else -math.inf


def _table(records: Iterable[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from mpc_credit.cli.output import console

    table = Table(box=box.SIMPLE_HEAD)
    for col in COLUMNS:
        table.add_column(col, overflow="fold")  # narrow terminals wrap cells, never drop them
    for r in records:
        table.add_row(*(Text(_printable(v)) for v in _row(r)))
    console().print(table)


def _row(r: dict[str, Any]) -> tuple[Any, ...]:
    """One table row; a rejected payload shows its size and what it claimed (with a ?)."""
    if r.get("outcome") == "rejected":
        who = f"{r['claimed_requester']}?" if "claimed_requester" in r else ""
        session, count = r.get("claimed_session", ""), f"{r.get('size', '')} B"
    else:
        who, session, count = r.get("requester", ""), r.get("session", ""), r.get("count", "")
    when = _when(_number(r.get("ts")))
    reason = r.get("reason", "") or r.get("kind", "")
    return (r.get("seq"), when, r.get("outcome"), str(session)[:SESSION_SHOWN], who, count, reason)


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return ""


def _printable(value: Any) -> str:
    """Text safe for a terminal: escape sequences and control characters (from other
    parties' reasons, or a tampered line) removed."""
    from mpc_credit.consortium.fields import clean_text

    return "" if value is None else clean_text(str(value), 1000)
