"""Importing the daemon and the MPC links never imports MPyC, so MPyC never parses the options
of the process that imports them (pytest's -p/-W, a command's --out)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def python(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter from the repository root; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def test_importing_the_daemon_leaves_mpyc_and_argv_alone() -> None:
    code = (
        "import sys; sys.argv = ['x', '--out', 'y', '-p', 'z', '-W', 'error'];"
        "import mpc_credit.consortium.daemon.daemon, mpc_credit.engine.links;"
        "print(sorted(m for m in sys.modules if m.startswith('mpyc')))"
    )
    done = python(code)
    assert done.stdout.strip() == "[]"


def test_the_link_class_loads_mpyc_with_an_empty_argv() -> None:
    code = (
        "import sys; sys.argv = ['x', '--out', 'y'];"
        "from mpc_credit.engine.links import CheckedLink;"
        "print(CheckedLink.__mro__[2].__name__, sys.argv)"
    )
    done = python(code)
    assert done.stdout.strip() == "MessageExchanger ['x', '--out', 'y']"
