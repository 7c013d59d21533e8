"""Joint training on one machine: one OS process per institution, mutual TLS between them.

The launcher acts for the lender and model owner: it checks the lender's holdout ids against
the lender's own file, gives each party only its own CSV path and an ephemeral consortium's TLS
folder, and runs the party processes (local/train_worker.py) to the end. With `--test-ids` it
then scores the holdout with the new model in a normal `simulate` session (the engine's MPC
scoring, each party reading the scoring CSV it wrote, the scores revealed to the lender only)
and computes AUC, Gini and KS from the lender's labels (training/metrics.py). The model file,
the scoring CSVs and the report are moved into place only when everything succeeded; any
failure kills every party and leaves no output. The request's checks, the launch and the
holdout are one run's steps in order, so they share this module (a little over 300 lines).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc_credit.consortium.pki import ephemeral_consortium
from mpc_credit.errors import RefusedError, SessionError, UsageError
from mpc_credit.local.ports import free_ports
from mpc_credit.local.processes import run_parties, staged_output
from mpc_credit.local.simulate import Simulation, run_simulation
from mpc_credit.local.train_worker import TrainSpec, options_json
from mpc_credit.names import check_name, join
from mpc_credit.scorecard.data import load_ids
from mpc_credit.scorecard.model import from_dict
from mpc_credit.scorecard.reason_table import ReasonTable, apply_reasons
from mpc_credit.training.data import read_header, read_training_csv
from mpc_credit.training.guardrails import Finding, check_model, format_findings
from mpc_credit.training.metrics import Metrics, metrics
from mpc_credit.training.report import NO_DP_NOTE, ReportData, write_report
from mpc_credit.training.session import Options, Setup


@dataclass(frozen=True)
class Training:
    """A `train` request."""

    data: Mapping[str, Path]
    lender: str
    label: str
    model_owner: str
    options: Options
    out: Path
    ledger_dir: Path  # one JSON ledger per party
    budget: float  # each party's, epsilon at delta 1e-6
    test_ids: Path | None = None
    test_fraction: float | None = None  # the lender draws this share of its rows as holdout
    seed: int = 0  # of that draw
    strict: bool = False  # a guardrail warning refuses to write the model
    report: Path | None = None
    scoring_data: Path | None = None  # a folder for each party's scoring CSV
    timeout: float = 3600.0
    reasons: ReasonTable | None = None  # the features' reason codes and statements

    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(self.data)

    def setup(self) -> Setup:
        return Setup(self.parties, self.lender, self.model_owner, self.options)


@dataclass
class Holdout:
    """The lender's view of the holdout: its labels and the scores the engine revealed."""

    ids: list[str]
    labels: np.ndarray
    scores: np.ndarray
    metrics: Metrics
    seconds: float


@dataclass
class TrainOutcome:
    """What a finished training run reports to the lender and model owner."""

    model: dict[str, Any]
    kept: dict[str, list[str]]
    candidates: dict[str, list[str]]
    rows: int
    seconds: float  # from `go` to the last party done
    phases: dict[str, float]  # the slowest party's seconds per phase
    epsilon_spent: dict[str, float | None]  # each party's ledger total after the run
    budget: dict[str, float | None]
    binning: list[dict[str, Any]] = field(default_factory=list)  # the model owner's own
    holdout: Holdout | None = None
    peak_mb: dict[str, float] = field(default_factory=dict)
    ivs: dict[str, dict[str, float]] = field(default_factory=dict)  # public, every candidate
    known: dict[str, int] = field(default_factory=dict)  # training rows each party knows
    no_dp_runs: dict[str, int | None] = field(default_factory=dict)
    bad_rate: float | None = None  # the lender's training rows
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the reason table's, one line each


def parse_label(text: str) -> tuple[str, str]:
    """`PARTY:COLUMN` from --label."""
    party, sep, column = text.partition(":")
    if not sep or not party or not column:
        raise UsageError(f"--label {text!r}: expected PARTY:COLUMN, e.g. bank:default")
    check_name(party, "--label (the party)")
    return party, column


def _check(t: Training) -> None:
    if len(t.parties) < 3:
        raise UsageError(
            f"training needs at least 3 parties (honest majority), got {len(t.parties)}: "
            f"{', '.join(t.parties) or 'none'}"
        )
    for flag, who in (("--label", t.lender), ("--model-owner", t.model_owner)):
        if who not in t.data:
            raise UsageError(f"{flag}: {who!r} is not one of the --data parties")
    e = t.options.epsilon
    if e is not None and not (e > 0 and e < float("inf")):
        raise UsageError(f"--epsilon {e}: must be a positive number")
    s = t.options.scaling
    for flag, v in (("--pdo", s.pdo), ("--odds", s.odds)):
        if not (v > 0 and v < float("inf")):
            raise UsageError(f"{flag} {v:g}: must be a positive number")
    if not abs(s.base_points) < float("inf"):
        raise UsageError(f"--base-points {s.base_points:g}: must be a finite number")
    if t.options.polish_steps < 0:
        raise UsageError(f"--polish-steps {t.options.polish_steps}: must be 0 or more")
    if not (t.budget >= 0 and t.budget < float("inf")):
        raise UsageError(f"--budget {t.budget}: must be a finite epsilon >= 0")
    if t.test_ids is not None and t.test_fraction is not None:
        raise UsageError("give --test-ids or --test-fraction, not both")
    if t.report is not None and t.model_owner != t.lender:
        raise UsageError(
            "--report: the report holds the model and the holdout metrics, so the model owner "
            "must be the lender"
        )
    t.setup().check()
    _check_outputs(t)
    _check_schema(t)


def _check_schema(t: Training) -> None:
    """A feature name held by two parties is refused up front (feature names are public)."""
    seen: dict[str, str] = {}
    for party, path in t.data.items():
        for name in read_header(path):
            if party == t.lender and name == t.label:
                continue
            if name in seen:
                raise UsageError(
                    f"{path}, line 1, column {name!r}: also a column of {seen[name]}'s "
                    f"{t.data[seen[name]]}; feature names must differ between parties"
                )
            seen[name] = party


def _check_outputs(t: Training) -> None:
    """No output may overwrite an input file."""
    inputs = {Path(p).resolve(): f"{party}'s --data" for party, p in t.data.items()}
    if t.test_ids is not None:
        inputs[Path(t.test_ids).resolve()] = "--test-ids"
    outputs = [("--out", t.out)]
    if t.scoring_data is not None:
        outputs += [("--scoring-data", t.scoring_data / f"{p}.csv") for p in t.parties]
    for flag, path in outputs:
        if path.resolve() in inputs:
            raise UsageError(
                f"{flag}: {path} is {inputs[path.resolve()]} file; choose another place"
            )


def _holdout_labels(t: Training, work: Path) -> tuple[list[str], np.ndarray, Path] | None:
    """The holdout ids, their labels and the ids file, from the lender's own file (the
    launcher acts for the lender): --test-ids as given, or --test-fraction drawn with --seed."""
    if t.test_ids is None and t.test_fraction is None:
        return None
    lender = read_training_csv(t.data[t.lender], t.label)
    if t.test_ids is not None:
        ids, path = load_ids(t.test_ids), Path(t.test_ids).resolve()
    else:
        ids = draw_holdout(list(lender.ids), t.test_fraction or 0.0, t.seed)
        path = work / "heldout.txt"
        path.write_text("\n".join(ids) + "\n", encoding="utf-8")
    lender.without(ids, str(path))  # every id known, some rows left to train on
    return ids, lender.rows_of(ids).labels(), path  # type: ignore[return-value]


def draw_holdout(ids: list[str], fraction: float, seed: int) -> list[str]:
    """The lender's holdout: round(fraction * n) of its ids, drawn with `seed`, in file order."""
    if not 0 < fraction < 1:
        raise UsageError(f"--test-fraction {fraction:g}: must lie strictly between 0 and 1")
    k = round(fraction * len(ids))
    if not 0 < k < len(ids):
        raise UsageError(
            f"--test-fraction {fraction:g} of {len(ids)} applicants leaves no holdout or no "
            "training rows"
        )
    picked = np.sort(np.random.default_rng(seed).permutation(len(ids))[:k])
    return [ids[i] for i in picked]


def _write_specs(
    t: Training, work: Path, staged: Path, holdout: Path | None
) -> list[tuple[str, Path]]:
    """Each party's spec file and TLS folder under `work`."""
    names = t.parties
    tls = ephemeral_consortium(work / "tls", len(names))
    ports = free_ports(len(names))
    run = uuid.uuid4().hex
    ledgers = t.ledger_dir.expanduser()
    ledgers.mkdir(parents=True, exist_ok=True)
    specs = []
    for pid, party in enumerate(names):
        folder = join(work, party, "", "party name")
        folder.mkdir()
        lender, owner = party == t.lender, party == t.model_owner
        spec = TrainSpec(
            party=party,
            parties=names,
            lender=t.lender,
            model_owner=t.model_owner,
            options=options_json(t.options),
            run=run,
            addresses=tuple(("127.0.0.1", p) for p in ports),
            tls=str(tls[pid]),
            data=str(Path(t.data[party]).resolve()),
            scoring=str(folder / "scoring.csv"),
            label=t.label if lender else None,
            test_ids=str(holdout) if lender and holdout is not None else None,
            ledger=str(join(ledgers, party, ".json", "party name")),
            budget=t.budget,
            out=str(staged) if owner else None,
            details=str(folder / "binning.json") if owner and t.report else None,
        )
        path = folder / "spec.json"
        path.write_text(spec.dumps())
        specs.append((party, path))
    return specs


async def _score_holdout(
    t: Training, model: Path, work: Path, ids: list[str], labels: np.ndarray
) -> Holdout:
    """The engine's MPC scoring of the holdout with the new model, revealed to the lender."""
    (work / "holdout.txt").write_text("\n".join(ids) + "\n")
    owners = {f["owner"] for f in json.loads(model.read_text())["features"]}
    sim = Simulation(
        model=model,
        data={p: work / p / "scoring.csv" for p in t.parties if p in owners},
        helpers=[p for p in t.parties if p not in owners],  # no feature left: still a party
        receiver=t.lender,
        reveal="score",
        out=work / "holdout-scores.csv",
        ids=work / "holdout.txt",
        model_owner=t.model_owner,
        timeout=t.timeout,
    )
    outcome = await run_simulation(sim)
    with sim.out.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    if [r[0] for r in rows] != ids:
        raise SessionError("the holdout scores do not match the holdout ids")
    scores = np.array([int(r[1]) for r in rows])
    return Holdout(ids, labels, scores, metrics(labels, scores), outcome.seconds)


def _outcome(
    t: Training, model: dict[str, Any], events: list[dict[str, Any]], seconds: float, work: Path
) -> TrainOutcome:
    by = dict(zip(t.parties, events))
    phases: dict[str, float] = {}
    for ev in events:
        for k, v in ev["seconds"].items():
            phases[k] = max(phases.get(k, 0.0), float(v))
    details = work / t.model_owner / "binning.json"
    return TrainOutcome(
        model=model,
        kept={p: list(ev["kept"]) for p, ev in by.items()},
        candidates={p: list(ev["candidates"]) for p, ev in by.items()},
        rows=int(by[t.lender]["rows"]),
        seconds=seconds,
        phases=phases,
        epsilon_spent={p: ev.get("epsilon_spent") for p, ev in by.items()},
        budget={p: ev.get("budget") for p, ev in by.items()},
        binning=json.loads(details.read_text()) if details.exists() else [],
        peak_mb={p: float(ev.get("peak_mb", 0.0)) for p, ev in by.items()},
        ivs=dict(zip(t.parties, by[t.model_owner]["ivs"])),
        known={p: int(ev["known"]) for p, ev in by.items()},
        no_dp_runs={p: ev.get("no_dp_runs") for p, ev in by.items()},
        bad_rate=by[t.lender].get("bad_rate"),
    )


def report_data(t: Training, r: TrainOutcome, model_bytes: bytes) -> ReportData:
    """What the report shows, from what the lender and model owner hold."""
    from mpc_credit.training.privacy import describe

    e = t.options.epsilon
    h = r.holdout
    facts: dict[str, Any] = {
        "training rows (the lender's)": r.rows,
        "bad rate of the training rows": "-" if r.bad_rate is None else f"{r.bad_rate:.1%}",
        "rows each party knows": r.known,
        "excluded features": ", ".join(t.options.exclude) or "none",
        "regression": t.options.regression,
        "WOE clip": t.options.woe_clip(),
        "C": t.options.c,
        "candidate bins": t.options.bins,
    }
    return ReportData(
        model=r.model,
        owner=t.model_owner,
        kept=r.kept,
        candidates=r.candidates,
        privacy={p: (e, r.epsilon_spent[p], r.budget[p]) for p in t.parties},
        binning=r.binning,
        labels=None if h is None else h.labels,
        scores=None if h is None else h.scores,
        metrics=None if h is None else h.metrics,
        notes=[NO_DP_NOTE] if e is None else [],
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        findings=r.findings,
        ivs=r.ivs,
        facts=facts,
        mechanism=describe(e, t.lender == t.model_owner),
    )


async def run_training(t: Training) -> TrainOutcome:
    """Train, validate and write; raise MpcCreditError (one line) on any failure."""
    _check(t)
    out, staged = staged_output(t.out, "--out")
    if t.scoring_data is not None and t.scoring_data.exists() and not t.scoring_data.is_dir():
        raise UsageError(f"--scoring-data {t.scoring_data}: not a folder")
    work = Path(tempfile.mkdtemp(prefix="mpc-credit-train-"))
    try:
        holdout = _holdout_labels(t, work)
        specs = _write_specs(t, work, staged, None if holdout is None else holdout[2])
        done = await run_parties("mpc_credit.local.train_worker", specs, t.timeout, "training")
        if not staged.exists():
            raise SessionError(f"model owner {t.model_owner} reported done but wrote no model")
        model, warnings = _with_reasons(t, staged)
        result = _outcome(t, model, done.events, done.seconds, work)
        result.warnings = warnings
        if holdout is not None:
            result.holdout = await _score_holdout(t, staged, work, *holdout[:2])
        h = result.holdout
        result.findings = check_model(model, *((h.labels, h.scores) if h else (None, None)))
        if t.strict and result.findings:
            lines = "; ".join(format_findings(result.findings))
            raise RefusedError(f"--strict: the model is not written: {lines}")
        if t.report is not None:
            write_report(t.report, report_data(t, result, staged.read_bytes()))
        if t.scoring_data is not None:
            _make_folder(t.scoring_data, "--scoring-data")  # as --report: created if absent
        os.replace(staged, out)
        if t.scoring_data is not None:
            for p in t.parties:
                shutil.copyfile(work / p / "scoring.csv", t.scoring_data / f"{p}.csv")
        return result
    finally:
        staged.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _with_reasons(t: Training, staged: Path) -> tuple[dict[str, Any], list[str]]:
    """The staged model, given the reason table's codes and statements (rewritten)."""
    model = json.loads(staged.read_text())
    if t.reasons is None:
        return model, []
    model, warnings = apply_reasons(model, t.reasons)
    from_dict(model, source=f"{t.out} (with the reasons of {t.reasons.path})")
    staged.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
    return model, warnings


def _make_folder(folder: Path, flag: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {folder}: cannot create the folder: {exc}") from None


def train_locally(t: Training) -> TrainOutcome:
    """Blocking wrapper around `run_training`."""
    return asyncio.run(run_training(t))
