"""The command line's own behaviour: --version, bare invocations, output through a pipe, text
that looks like rich markup, and `pki init` from an install without a source checkout."""

from __future__ import annotations

import io
import json
import os

from rich.console import Console

from mpc_credit import __version__
from mpc_credit.cli.output import PIPE_WIDTH, console, plain
from mpc_credit.consortium.config import load_party_config
from mpc_credit.demo import FILES
from tests.cli.test_bad_input import cli
from tests.conftest import MODEL


def test_version_option_and_command(tmp_path):
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"mpc-credit {__version__}\n"
    assert cli("version", cwd=tmp_path).stdout == f"{__version__}\n"


def test_bare_command_and_bare_group_print_their_help_and_exit_0(tmp_path):
    for args in ((), ("pki",), ("model",)):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Usage: mpc-credit" in proc.stdout
        assert proc.stderr == ""  # no "mpc-credit:  (see mpc-credit --help)"
    proc = cli("nope", cwd=tmp_path)
    assert proc.returncode == 2 and "No such command 'nope'" in proc.stderr


def test_tables_are_not_cropped_through_a_pipe(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = cli("model", "show", str(MODEL), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    long = "... >= 200 DM / salary assignments for at least 1 year"
    row = next(line for line in proc.stdout.splitlines() if long in line)
    assert "status_of_existing_checking_account" in row and len(row) > 80
    assert "…" not in proc.stdout
    assert all(line == line.rstrip() for line in proc.stdout.splitlines()[1:])


def test_a_model_s_text_is_shown_as_it_is_not_as_markup(tmp_path):
    model = json.loads(MODEL.read_text())
    feature = next(f for f in model["features"] if f["kind"] == "categorical")
    feature["categories"][0] = ["[bold]A11[/bold]"]
    (tmp_path / "model.json").write_text(json.dumps(model))
    proc = cli("model", "show", "model.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[bold]A11[/bold]" in proc.stdout


def test_console_width_and_plain_text(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert console().width == PIPE_WIDTH  # not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert console().width == 100  # an explicit choice wins
    out = Console(file=io.StringIO(), width=200)
    plain(out, "optbinning is not installed (pip install 'mpc-credit[optbinning]')")
    assert "'mpc-credit[optbinning]'" in out.file.getvalue()


def test_pki_init_without_a_model_copies_the_demo_then_reuses_it(tmp_path):
    proc = cli("pki", "init", "--out", "parties", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"the demo's model and data copied to parties ({len(FILES)} files)" in proc.stdout
    parties = tmp_path / "parties"
    for name in FILES:
        assert (parties / name).is_file(), name
    bank = load_party_config(parties / "bank" / "party.toml")
    assert bank.data is not None
    assert bank.data.resolve() == (parties / "bank" / "applicants.csv").resolve()
    (parties / "telco" / "applicants.csv").write_text("edited\n")  # a file already there stays
    again = cli("pki", "init", "--out", "parties", "--force", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "copied" not in again.stdout
    assert (parties / "telco" / "applicants.csv").read_text() == "edited\n"
