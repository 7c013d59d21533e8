"""`mpc-credit model publish | approve | refuse | promote | retire | list`: the model registry
through the party's own daemon (commands of the `model` group, added by `add_commands`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mpc_credit.cli.output import console, plain

Config = Annotated[Path, typer.Option(help="This party's party.toml.")]
Ref = Annotated[str, typer.Argument(help="The model as ID@VERSION (a bare ID: its newest).")]
Quiet = Annotated[bool, typer.Option(help="No progress lines on stderr.")]


def _ask(config: Path, op: Any, *, quiet: bool = True, timeout: float = 60.0) -> dict[str, Any]:
    from mpc_credit.consortium.requester import registry_op

    err = console(stderr=True)
    return asyncio.run(
        registry_op(
            config, op, timeout=timeout, progress=None if quiet else lambda m: plain(err, m)
        )
    )


def publish(
    model: Annotated[Path, typer.Argument(help="The full scorecard model JSON.")],
    config: Config,
    as_: Annotated[
        str,
        typer.Option("--as", help="champion | challenger | candidate: its status once approved."),
    ] = "champion",
    mode: Annotated[
        list[str] | None, typer.Option(help="A mode it serves (repeatable; default both).")
    ] = None,
    reveal: Annotated[
        list[str] | None, typer.Option(help="A reveal policy it serves (repeatable; default all).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds for the publish session.")] = 60.0,
    quiet: Quiet = False,
) -> None:
    """Publish MODEL as the next version of its id; prints ID@VERSION.

    Run at a model owner. Every party receives its part of the model over its own TLS link
    (the broker carries names and digests only); the version serves once every feature
    owner approved it (`model approve`). The id is the model's `name`.

    Example: mpc-credit model publish scorecard-2027q1.json --config parties/bank/party.toml
    --as challenger
    """
    from mpc_credit.cli.options import choice
    from mpc_credit.consortium.control import PUBLISH, ControlRequest
    from mpc_credit.errors import UsageError
    from mpc_credit.files import read_json
    from mpc_credit.vocabulary import MODES, REVEALS

    status = choice(as_, ("champion", "challenger", "candidate"), "--as")
    modes = tuple(choice(m, MODES, "--mode") for m in (mode or MODES))
    reveals = tuple(choice(r, REVEALS, "--reveal") for r in (reveal or REVEALS))
    op = ControlRequest(
        PUBLISH,
        model=read_json(model, "model file", UsageError),
        status=status,
        modes=modes,
        reveals=reveals,
        timeout=timeout,
    )
    answer = _ask(config, op, quiet=quiet, timeout=timeout)
    typer.echo(answer["model"])


def _decide(config: Path, ref: str, approve: bool, reason: str = "") -> None:
    from mpc_credit.consortium.control import DECIDE, ControlRequest

    op = ControlRequest(DECIDE, model_id=ref, approve=approve, reason=reason)
    answer = _ask(config, op)
    said = "approved" if approve else "refused"
    again = "" if answer.get("recorded") else " (already)"
    status = f"; now {answer['status']}" if answer.get("status") else ""
    typer.echo(f"{said} {answer['model']}{again}{status}")


def approve(ref: Ref, config: Config) -> None:
    """Approve a model version for this party's data (approving twice is not an error).

    A feature owner's signed word; once every feature owner approved a version, it serves.

    Example: mpc-credit model approve scorecard-2027q1@2 --config parties/telco/party.toml
    """
    _decide(config, ref, True)


def refuse(
    ref: Ref,
    config: Config,
    reason: Annotated[str, typer.Option(help="Why, for the others (public).")] = "refused",
) -> None:
    """Refuse a model version for this party's data; it does not serve while refused.

    Example: mpc-credit model refuse scorecard-2027q1@2 --config parties/telco/party.toml
    --reason "uses a feature we do not allow"
    """
    _decide(config, ref, False, reason)


def _set_status(config: Path, ref: str, status: str) -> None:
    from mpc_credit.consortium.control import SET_STATUS, ControlRequest

    answer = _ask(config, ControlRequest(SET_STATUS, model_id=ref, status=status))
    typer.echo(f"{answer['model']}: {answer.get('status') or status}")


def promote(ref: Ref, config: Config) -> None:
    """Make a model version the champion, the model requests take by default.

    Its owner's signed word; the previous champion becomes a candidate, still served by name.

    Example: mpc-credit model promote scorecard-2027q1@2 --config parties/bank/party.toml
    """
    _set_status(config, ref, "champion")


def retire(ref: Ref, config: Config) -> None:
    """Retire a model version for good: no party serves it again (its owner's word).

    Example: mpc-credit model retire german-credit-demo@1 --config parties/bank/party.toml
    """
    _set_status(config, ref, "retired")


def list_models(
    config: Config,
    as_json: Annotated[bool, typer.Option("--json", help="The registry as JSON.")] = False,
) -> None:
    """Show every model version in the registry as this party sees it.

    Its status, owner, who approved it, what is pending, and which modes this party can
    serve now; versions it cannot serve are named on stderr with the reason.

    Example: mpc-credit model list --config parties/bank/party.toml
    """
    from rich.table import Table
    from rich.text import Text

    from mpc_credit.consortium.control import MODELS, ControlRequest

    answer = _ask(config, ControlRequest(MODELS))
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table(
        "model", "status", "owner", "approved", "pending / refused", "served here", "digest"
    )
    for m in answer["models"]:
        waiting = ", ".join(m["pending"]) + "".join(
            f" {p} refused: {why}" for p, why in m["refused"].items()
        )
        cells = [
            m["model"],
            m["status"],
            m["owner"],
            ", ".join(m["approved"]) or "-",
            waiting.strip() or "-",
            ", ".join(m["offered"]) or "-",
            m["digest"][:12],
        ]
        table.add_row(*(Text(str(c)) for c in cells))
    out = console()
    out.print(table)
    for line in answer.get("problems", []):
        plain(console(stderr=True), f"not offered: {line}")


def add_commands(group: typer.Typer) -> None:
    """Add the registry's commands to the `model` group."""
    group.command("publish")(publish)
    group.command("approve")(approve)
    group.command("refuse")(refuse)
    group.command("promote")(promote)
    group.command("retire")(retire)
    group.command("list")(list_models)
