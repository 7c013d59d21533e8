"""`mpc-credit pki`: the consortium's keys and certificates.

Enrollment in which no private key leaves its institution: each institution runs
`pki request`, the operator `pki sign` on the requests, each institution `pki install` on
its bundle; `pki revoke` puts a party's certificates on the revocation lists. `pki init`
does all of it on one machine (demo, tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_credit.cli import options
from mpc_credit.consortium.config import DEFAULT_MPC_BASE, DEFAULT_MPC_PORTS, Consortium
from mpc_credit.errors import UsageError

pki_app = typer.Typer(help="Consortium keys and certificates.", no_args_is_help=True)

# The operator's choices, shared by `pki init` and `pki sign`.
Name = Annotated[str, typer.Option(help="Consortium name (topic prefix mpc-credit/NAME).")]
ModelOwner = Annotated[
    str | None, typer.Option(help="Holder of the full model (default: first party).")
]
Requester = Annotated[
    list[str] | None,
    typer.Option(help="A party allowed to request scores (default: the model owner)."),
]
Trainer = Annotated[
    list[str] | None,
    typer.Option(help="A party allowed to start joint training (default: the model owner)."),
]
Prohibit = Annotated[
    list[str] | None,
    typer.Option(
        help="A feature (column name) no model may use, e.g. a prohibited characteristic: every "
        "party leaves it out of every training run (repeat)."
    ),
]
Reveal = Annotated[
    list[str] | None, typer.Option(help=f"Allowed reveal policies ({options.REVEAL_HELP}).")
]
BrokerHost = Annotated[str, typer.Option(help="Broker host the daemons connect to.")]
BrokerPort = Annotated[int | None, typer.Option(help="Broker port (default 1883, 8883 with TLS).")]
BrokerTls = Annotated[
    bool, typer.Option(help="Daemons use TLS client certificates for the broker.")
]
DailyBudget = Annotated[
    int | None,
    typer.Option(help="Applicants each requester may have scored per 24 hours (no limit)."),
]
PerApplicantDaily = Annotated[
    int | None,
    typer.Option(help="Times one applicant may be scored per 24 hours, by all (no limit)."),
]
Force = Annotated[bool, typer.Option(help="Replace an existing consortium.")]


def _choices(
    requester: list[str] | None,
    reveal: list[str] | None,
    trainer: list[str] | None = None,
    prohibit: list[str] | None = None,
    **rest: object,
) -> dict[str, object]:
    """The keyword arguments of create.Setup for the shared options."""
    from mpc_credit.vocabulary import REVEALS

    trainers = {"trainers": trainer} if trainer else {}
    return {
        "requesters": requester or (),
        "reveals": reveal or REVEALS,
        "prohibited_features": prohibit or (),
        **trainers,
        **rest,
    }


def _summary(cons: Consortium, out: Path) -> None:
    typer.echo(f"consortium {cons.name!r}: {out / 'consortium.json'}")
    for p in cons.parties:
        typer.echo(
            f"  {p.name:<10} pid {p.pid}  mpc {p.host}:{p.mpc_port}+{p.mpc_ports}  "
            f"folder {out / p.name}"
        )


@pki_app.command("init")
def pki_init(
    out: Annotated[
        Path, typer.Option(help="Folder for the consortium file and party folders.")
    ] = Path("parties"),
    model: Annotated[Path | None, typer.Option(help="The full scorecard model JSON.")] = None,
    party: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME, NAME=HOST or NAME=HOST:PORT, in pid order (default: the model's owners)."
        ),
    ] = None,
    name: Name = "demo",
    model_owner: ModelOwner = None,
    requester: Requester = None,
    trainer: Trainer = None,
    prohibit: Prohibit = None,
    reveal: Reveal = None,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = None,
    broker_tls: BrokerTls = False,
    daily_budget: DailyBudget = None,
    per_applicant_daily: PerApplicantDaily = None,
    training_data: Annotated[
        list[str] | None,
        typer.Option(help="PARTY=CSV: a party's training CSV, for joint training (repeat)."),
    ] = None,
    force: Force = False,
) -> None:
    """Create a whole consortium on this machine (demo and tests).

    Writes every party's keys, its certificates, consortium.json and one party.toml per
    party. For real institutions use pki request / sign / install, which never moves a
    private key.

    Without --model it uses the demo's model under OUT, after copying the demo's model and
    CSVs there when OUT has none (the German credit consortium of mpc-credit demo).

    Example: mpc-credit pki init --out parties --model parties/bank/german-credit-demo.json
    """
    from mpc_credit.consortium.create import init_consortium, parse_party_arg
    from mpc_credit.local.simulate import parse_data_args

    if model is None:
        model = _demo_model(out)
    plans = [parse_party_arg(p) for p in party or []]
    choices = _choices(
        name=name,
        model_owner=model_owner,
        requester=requester,
        trainer=trainer,
        prohibit=prohibit,
        reveal=reveal,
        broker_host=broker_host,
        broker_port=broker_port,
        broker_tls=broker_tls,
        daily_budget=daily_budget,
        per_applicant_daily=per_applicant_daily,
        force=force,
    )
    training = parse_data_args(training_data or [], "--training-data")
    cons = init_consortium(out, model, parties=plans, training=training, **choices)
    _summary(cons, out)
    typer.echo(
        f"private keys (mode 0600): {out}/*/signing.key, */.config/party_*.key, "
        f"*/mqtt/client.key, {out}/ca/*.key, {out}/broker/server.key"
    )


def _demo_model(out: Path) -> Path:
    """Without --model: the demo model in OUT's party folders; when OUT has none, the demo's
    model and CSVs are copied there from the package first (OUT/bank/german-credit-demo.json,
    OUT/NAME/applicants.csv, OUT/bank/labels.csv), so `pki init` runs from any install."""
    from mpc_credit.demo import MODEL, MODEL_NAME, copy_demo

    found = sorted(out.glob(f"*/{MODEL_NAME}.json"))
    if found:
        return found[0]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a folder")
    copied = copy_demo(out)
    typer.echo(f"no --model: the demo's model and data copied to {out} ({len(copied)} files)")
    return out / MODEL


@pki_app.command("request")
def pki_request(
    party: Annotated[str, typer.Option(help="This institution's party name.")],
    out: Annotated[Path, typer.Option(help="This party's folder (created with mode 0700).")],
    host: Annotated[
        str, typer.Option(help="Where the other parties reach this one.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="First port of this party's MPC range.")] = (
        DEFAULT_MPC_BASE
    ),
    ports: Annotated[int, typer.Option(help="Number of MPC ports.")] = DEFAULT_MPC_PORTS,
    force: Annotated[bool, typer.Option(help="Replace this party's existing keys.")] = False,
) -> None:
    """Make this party's private keys here and a public request for the operator.

    The keys never leave this machine; OUT/request/ (request.json and two CSRs) goes to
    the consortium operator.

    Example: mpc-credit pki request --party bank --host mpc.bank.example --out bank
    """
    from mpc_credit.consortium.enroll import request_party, write_request

    req = request_party(out, party, host=host, mpc_port=port, mpc_ports=ports, force=force)
    folder = write_request(req, out)
    typer.echo(f"private keys (mode 0600) in {out}: signing.key, .config/mpc.key, mqtt/client.key")
    typer.echo(f"send {folder} to the consortium operator; fingerprint {req.fingerprint()}")


@pki_app.command("sign")
def pki_sign(
    requests: Annotated[
        list[Path], typer.Option(help="A party's request folder, in pid order (repeat).")
    ],
    out: Annotated[Path, typer.Option(help="The operator's consortium folder.")],
    model: Annotated[Path, typer.Option(help="The full scorecard model JSON.")],
    name: Name = "demo",
    model_owner: ModelOwner = None,
    requester: Requester = None,
    trainer: Trainer = None,
    prohibit: Prohibit = None,
    reveal: Reveal = None,
    broker_host: BrokerHost = "127.0.0.1",
    broker_port: BrokerPort = None,
    broker_tls: BrokerTls = False,
    daily_budget: DailyBudget = None,
    per_applicant_daily: PerApplicantDaily = None,
    force: Force = False,
) -> None:
    """Issue certificates from the parties' requests (the consortium operator).

    Writes consortium.json and one bundle per party, OUT/NAME/, holding no private key:
    ship it to that party.

    Example: mpc-credit pki sign --requests bank/request --requests bureau/request
    --requests telco/request --out consortium --model german-credit-demo.json
    """
    from mpc_credit.consortium.create import Setup, sign_consortium
    from mpc_credit.consortium.enroll import load_request

    reqs = [load_request(r) for r in requests]
    choices = _choices(
        name=name,
        model_owner=model_owner,
        requester=requester,
        trainer=trainer,
        prohibit=prohibit,
        reveal=reveal,
        broker_host=broker_host,
        broker_port=broker_port,
        broker_tls=broker_tls,
        daily_budget=daily_budget,
        per_applicant_daily=per_applicant_daily,
        force=force,
    )
    cons = sign_consortium(reqs, out, model, Setup(**choices))
    for r in reqs:
        typer.echo(f"  {r.name:<10} request fingerprint {r.fingerprint()}")
    _summary(cons, out)


@pki_app.command("install")
def pki_install(
    bundle: Annotated[Path, typer.Option(help="The bundle the operator sent (OUT/NAME/).")],
    folder: Annotated[Path, typer.Option(help="This party's folder (from pki request).")],
) -> None:
    """Check that the operator's bundle certifies this party's own keys and install it.

    Example: mpc-credit pki install --bundle received/bank --folder bank
    """
    from mpc_credit.consortium.enroll import install_bundle

    config = install_bundle(bundle, folder)
    typer.echo(f"installed; run: mpc-credit party run --config {config}")


@pki_app.command("revoke")
def pki_revoke(
    party: Annotated[str, typer.Argument(help="The party whose certificates to revoke.")],
    consortium: Annotated[Path, typer.Option(help="The operator's consortium folder.")] = Path(
        "parties"
    ),
) -> None:
    """Put a party's MPC and broker certificates on the revocation lists.

    Hand the MPC list to every party (.config/mpyc_crl.pem) and regenerate the mosquitto
    configuration.

    Example: mpc-credit pki revoke telco --consortium parties
    """
    from mpc_credit.consortium.revoke import revoke_party

    for path in revoke_party(consortium, party):
        typer.echo(f"wrote {path}")
