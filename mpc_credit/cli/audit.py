"""`mpc-credit audit`: check and read a party's tamper-evident audit log.

`verify` exits 0 when every line is intact, 6 (AuditIntegrityError) naming the first line
that is altered, missing, out of order or incomplete, 2 for a bad configuration or no log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from mpc_credit.cli import options

audit_app = typer.Typer(help="A party's tamper-evident audit log.", no_args_is_help=True)

CONFIG_HELP = "This party's party.toml (names the audit file and the consortium)."
COLUMNS = ("seq", "time (UTC)", "outcome", "session", "requester", "count", "reason")
SESSION_SHOWN = 8  # hex digits of a session id in the table; --json has all 32


@audit_app.command("verify")
def verify_command(config: Annotated[Path, typer.Option(help=CONFIG_HELP)]) -> None:
    """Check the audit log's hash chain and every line's signature by this party's key.

    Prints the number of lines and the hash of the last one (keep it elsewhere: lines cut off
    the end are only seen against it). Exits 6 naming the first line that is altered, missing,
    out of order or incomplete.

    Example: mpc-credit audit verify --config parties/bank/party.toml
    """
    from mpc_credit.consortium.audit import verify
    from mpc_credit.consortium.config import load_consortium, load_party_config
    from mpc_credit.errors import AuditIntegrityError, UsageError

    cfg = load_party_config(config)
    cons = load_consortium(cfg.consortium_file)
    if cfg.party not in cons.names:
        raise UsageError(f"{config}: party {cfg.party!r} is not in {cfg.consortium_file}")
    result = verify(cfg.audit, cons.party(cfg.party).public_key)
    if not result.ok:
        raise AuditIntegrityError(f"{cfg.audit}: {result.message}")
    typer.echo(f"{cfg.audit}: {result.message}")


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
