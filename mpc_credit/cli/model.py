"""`mpc-credit model ...`: validate, show, import, split scorecard model files, and give
their features reason codes and statements."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mpc_credit.cli import options
from mpc_credit.errors import ModelError, UsageError
from mpc_credit.files import read_json

if TYPE_CHECKING:
    from mpc_credit.scorecard.model import Feature
    from mpc_credit.scorecard.reason_table import ReasonTable

# Commands import the model module (and numpy) when they run, to keep start-up quick.

model_app = typer.Typer(
    help="Validate, show, import and split scorecard model files; add reason statements.",
    no_args_is_help=True,
)

REASONS_HELP = "CSV feature,code,statement: each feature's reason code and statement."


@model_app.command("validate")
def validate(model: Annotated[Path, typer.Argument(help="Model JSON file.")]) -> None:
    """Check a model file against the format; print its digest.

    Example: mpc-credit model validate parties/bank/german-credit-demo.json
    """
    from mpc_credit.scorecard.model import load_model

    m = load_model(model)
    lo, hi = m.score_range()
    kind = f"part of {m.part.owner} ({m.part.mode} mode)" if m.part else "full model"
    typer.echo(
        f"{model}: ok, {kind}, {len(m.features)} features, owners {', '.join(m.owners)}, "
        f"scores {lo}..{hi}, cutoff {m.cutoff}, sha256 {m.digest()}"
    )


@model_app.command("show")
def show(model: Annotated[Path, typer.Argument(help="Model JSON file.")]) -> None:
    """Print a model's features, bins and points, and each feature's reason, as a table.

    Example: mpc-credit model show parties/bank/german-credit-demo.json
    """
    from rich.table import Table
    from rich.text import Text

    from mpc_credit.cli.output import console
    from mpc_credit.scorecard.model import load_model

    m = load_model(model)
    table = Table(title=Text(f"{m.name} (cutoff {m.cutoff}, intercept {m.intercept})"))
    for col in ("feature", "owner", "bin", "points", "reason"):
        table.add_column(col)
    for f, reason in zip(m.features, m.reasons()):
        said = f"{reason.code}: {reason.statement}"
        for k, (label, pts) in enumerate(_bins(f)):
            cells = (f.name, f.owner, label, pts, "" if k else said)
            table.add_row(*(Text(str(cell)) for cell in cells))
    console().print(table)


def _bins(f: Feature) -> list[tuple[str, str]]:
    from mpc_credit.scorecard.model import HiddenFeature, NumericFeature

    def pts(v: int | None) -> str:
        return "hidden" if v is None else str(v)

    if isinstance(f, HiddenFeature):
        return [(f"{f.n_bins} bins", "hidden")]
    points = f.points or (None,) * (f.n_bins - 2)
    if isinstance(f, NumericFeature):
        bounds = ("-inf", *map(str, f.edges), "inf")
        rows = [(f"[{a}, {b})", pts(p)) for a, b, p in zip(bounds, bounds[1:], points)]
    else:
        rows = [(", ".join(g), pts(p)) for g, p in zip(f.categories, points)]
        rows.append(("(other)", pts(f.other_points)))
    rows.append(("(missing)", pts(f.missing_points)))
    return rows


@model_app.command("split")
def split(
    model: Annotated[Path, typer.Argument(help="Full model JSON file.")],
    out_dir: Annotated[
        Path, typer.Option(help="Folder for one part per owner: <owner>.<mode>.json.")
    ],
    mode: Annotated[
        str, typer.Option(help="shared: parts carry the owner's points; secret: bins only.")
    ] = "shared",
    owner: Annotated[
        list[str] | None, typer.Option(help="Only these owners (default: all).")
    ] = None,
) -> None:
    """Split a model into the per-owner parts each feature owner receives.

    A part holds the owner's own features (with points in shared mode, bins only in
    secret mode), the other owners' feature names and bin counts, and the full
    model's digest.

    Example: mpc-credit model split parties/bank/german-credit-demo.json --out-dir parts
    """
    from mpc_credit.names import join
    from mpc_credit.scorecard.model import dump_model, load_model

    checked = options.mode(mode)
    m = load_model(model)
    owners = owner or list(m.owners)
    paths = {o: join(out_dir, o, f".{mode}.json", "owner (a party name)") for o in owners}
    out_dir.mkdir(parents=True, exist_ok=True)
    for o, path in paths.items():
        dump_model(m.split(o, checked), path)
        typer.echo(f"{path}: {len(m.features_of(o))} features of {o}")


@model_app.command("import")
def import_optbinning(
    scorecard: Annotated[
        Path, typer.Argument(help="A fitted optbinning Scorecard saved with Scorecard.save().")
    ],
    owners: Annotated[Path, typer.Option(help="JSON object: feature name -> owner.")],
    out: Annotated[Path, typer.Option(help="Model JSON to write.")],
    name: Annotated[str, typer.Option(help="Model name.")],
    cutoff: Annotated[int, typer.Option(help="Approve iff score >= cutoff.")],
    reasons: Annotated[Path | None, typer.Option(help=REASONS_HELP)] = None,
) -> None:
    """Import a fitted optbinning Scorecard (needs the optbinning extra).

    The scorecard must use scaling_method="pdo_odds" and rounding=True; its scaling is
    read from the scorecard. The file is checked to score exactly as optbinning does.
    --reasons gives the features their reason codes and statements (docs/formats.md).

    Example: mpc-credit model import scorecard.pkl --owners owners.json --name demo
    --cutoff 500 --reasons reasons.csv --out model.json
    """
    from mpc_credit.names import check_name
    from mpc_credit.scorecard.model import dump_model, from_dict
    from mpc_credit.scorecard.optbinning_import import scorecard_to_model

    check_name(name, "--name")  # the model's name may name its parts' files (pki sign)
    table = load_reasons(reasons)
    sc = _load_pickle(scorecard)
    mapping = _load_owners(owners)
    params = getattr(sc, "scaling_method_params", None) or {}
    try:
        data = scorecard_to_model(
            sc,
            mapping,
            name=name,
            cutoff=cutoff,
            pdo=params.get("pdo", 0),
            odds=params.get("odds", 0),
            base_points=params.get("scorecard_points", 0),
        )
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{scorecard}: {exc}") from None
    m = from_dict(with_reasons(data, table), source=str(out))
    dump_model(m, out)
    typer.echo(f"{out}: {len(m.features)} features, owners {', '.join(m.owners)}")


@model_app.command("reasons")
def add_reasons(
    model: Annotated[Path, typer.Argument(help="Full model JSON file.")],
    reasons: Annotated[Path, typer.Option(help=REASONS_HELP)],
    out: Annotated[Path, typer.Option(help="Model JSON to write (may be MODEL itself).")],
) -> None:
    """Give an existing model's features reason codes and statements from a reason table.

    Features the table leaves out keep theirs. The statements are part of the model, so
    its digest changes: split it and hand out the parts again (pki sign --model).

    Example: mpc-credit model reasons model.json --reasons reasons.csv --out model.json
    """
    from mpc_credit.scorecard.model import dump_model, from_dict, load_model, to_dict

    table = load_reasons(reasons)
    m = from_dict(with_reasons(to_dict(load_model(model)), table), source=str(out))
    dump_model(m, out)
    typer.echo(f"{out}: {len(m.features)} features, sha256 {m.digest()}")


def load_reasons(path: Path | None) -> ReasonTable | None:
    """The --reasons table, read and checked before any other work."""
    from mpc_credit.scorecard.reason_table import load_reason_table

    return None if path is None else load_reason_table(path)


def with_reasons(data: dict[str, Any], table: ReasonTable | None) -> dict[str, Any]:
    """A model dict with the table's reasons; each warning one line on stderr."""
    from mpc_credit.scorecard.reason_table import apply_reasons

    if table is None:
        return data
    out, warnings = apply_reasons(data, table)
    for line in warnings:
        typer.echo(f"mpc-credit: warning: {line}", err=True)
    return out


def _load_pickle(path: Path) -> object:
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise ModelError(f"{path}: file not found") from None
    except Exception as exc:
        raise ModelError(
            f"{path}: not a saved optbinning Scorecard ({type(exc).__name__}: {exc})"
        ) from None


def _load_owners(path: Path) -> dict[str, str]:
    data = read_json(path, "owners file", UsageError)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"{path}: expected a JSON object mapping feature name to owner")
    return data
