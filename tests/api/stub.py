"""An in-process app over a stub daemon: the real control socket server (`ControlServer`)
answering `status` and `score` without MPC, on its own event loop thread.

For the tests that need the app's behaviour, not the consortium's: validation, limits,
problems, the fuzz test. Holds no tests itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mpc_credit.api.app import create_app
from mpc_credit.api.settings import ServeSettings
from mpc_credit.api.tokens import create_token
from mpc_credit.consortium.control import MODELS, SCORE, STATUS, ControlRequest
from mpc_credit.consortium.daemon.control import ControlServer, LocalClient
from mpc_credit.errors import UsageError
from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reason_table import load_reason_table
from mpc_credit.scorecard.reveal import Result, result_fields
from tests.cluster import NAMES, Cluster
from tests.conftest import MODEL, PARTIES

KNOWN = {f"A{i:04d}" for i in range(1, 1001)}
DECLINED = "A0002"  # declined, reasons: features 2 and 7 (duration, employment)


def consortium_files(root: Path) -> Path:
    """A consortium's files (keys, configurations), nothing running; bank's party.toml."""
    return Cluster(root).config("bank")


class StubDaemon:
    """`status`: all online; `score`: a fixed result for known ids, else the daemon's error."""

    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path
        model = load_model(MODEL)
        self.names = tuple(f.name for f in model.features)
        self.scaling = model.scaling
        table = load_reason_table(PARTIES / "bank" / "reasons.csv")
        self.reasons = tuple(table.reasons[n] for n in self.names)  # the demo's statements
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.model = model
        handlers = {STATUS: self.status, SCORE: self.score, MODELS: self.models}
        self.server = ControlServer(socket_path, handlers)

    async def models(self, op: ControlRequest, local: LocalClient) -> None:
        """The demo's model as the registry's champion, served in both modes."""
        local.finish("result", party="bank", models=[self.row()], problems=[])

    def row(self) -> dict[str, Any]:
        m = self.model
        return {
            "model": f"{m.name}@1",
            "id": m.name,
            "version": 1,
            "digest": m.digest(),
            "owner": "bank",
            "status": "champion",
            "in_service": True,
            "approved": [],
            "refused": {},
            "pending": [],
            "modes": ["shared", "secret"],
            "reveal": ["score", "decision", "reasons", "pd"],
            "offered": ["shared", "secret"],
            "from_consortium_file": True,
            "features": [{"name": f.name, "owner": f.owner, "bins": f.n_bins} for f in m.features],
        }

    async def status(self, op: ControlRequest, local: LocalClient) -> None:
        local.finish(
            "status",
            party="bank",
            connected=True,
            stopping=False,
            presence=dict.fromkeys(NAMES, "online"),
            busy=False,
            queued=0,
            sessions_run=0,
            dropped=0,
            budget={"daily": 1000, "used": 10},
            models=[self.row()],
            model_problems=[],
        )

    async def score(self, op: ControlRequest, local: LocalClient) -> None:
        unknown = [a for a in op.ids if a not in KNOWN]
        if unknown:
            local.fail(UsageError(f"applicant {unknown[0]!r} is not in bank's file"))
            return
        width = 5 if op.reveal == "reasons" else 1
        values = np.zeros((len(op.ids), width), dtype=np.int64)
        values[:, 0] = 1 if op.reveal in ("decision", "reasons") else 520
        if op.reveal == "reasons" and DECLINED in op.ids:
            values[op.ids.index(DECLINED)] = [0, 2, 7, 0, 0]
        result = Result(op.reveal, op.ids, values, self.names, self.scaling, self.reasons)  # type: ignore[arg-type]
        local.send("progress", message="stub: scored")
        local.finish("result", session="0" * 32, **result_fields(result))

    def __enter__(self) -> StubDaemon:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextlib.contextmanager
def stub_app(root: Path, *, daemon: bool = True, **limits: Any) -> Iterator[tuple[Any, str]]:
    """The app for bank (with or without its stub daemon) and a token for every reveal."""
    config = consortium_files(root)
    settings = ServeSettings.for_config(config, **limits)
    token = create_token(settings.tokens_file, "tester", ["score", "decision", "reasons", "pd"])
    if daemon:
        with StubDaemon(settings.party.control_socket):
            yield create_app(settings), token
    else:
        yield create_app(settings), token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
