"""The app fuzzed from its own OpenAPI document (schemathesis), in process: with the daemon's
socket absent, and with a stub daemon behind it. No call may end in 500 or hang; every error
is a problem document. Examples are bounded so the module takes well under a minute.

(schemathesis's pytest plugin does not run under this pytest, so each operation's strategy
is driven by hypothesis directly.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.stub import auth, stub_app

EXAMPLES = 25
PER_CALL = 10.0  # seconds: a call that takes longer is a hang


def _check(response: Any, seconds: float) -> None:
    status = response.status_code
    assert seconds < PER_CALL, "a call hung"
    assert status != 500, response.text
    assert "Traceback" not in response.text
    if status >= 400:
        ctype = response.headers["content-type"]
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/problem+json"), status
        doc = response.json()
        assert doc["status"] == status and doc["title"] and "detail" in doc


@pytest.mark.parametrize("daemon", [False, True], ids=["daemon absent", "daemon present"])
def test_no_server_error_and_no_hang(tmp_path: Any, daemon: bool) -> None:
    with stub_app(tmp_path, daemon=daemon) as (app, token):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) >= 9
        for op in operations:

            @given(case=op.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                for headers in (auth(token), {}):
                    t0 = time.monotonic()
                    r = case.call(headers=headers, timeout=PER_CALL)
                    _check(r, time.monotonic() - t0)

            run()
