"""What one `mpc-credit serve` instance runs with: the party it fronts and its limits.

Everything the server keeps on disk lives next to the party's `party.toml`, like the daemon's
own files: the client tokens (`serve-tokens.json`, mode 0600, written by `serve token`) and
the access log (`serve-access.jsonl`, mode 0600, one JSON line per call naming the client).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpc_credit.consortium.config import PartyConfig, load_party_config

TOKENS_FILE = "serve-tokens.json"
ACCESS_LOG = "serve-access.jsonl"

MAX_DECISION_IDS = 1_000  # applicants per POST /v1/decisions (a batch job takes more)
MAX_BATCH_IDS = 100_000  # the control socket's MAX_IDS: one session per batch job
DECISION_BODY = 1 << 20  # 1 MiB: 1,000 ids of 64 characters fit many times over
BATCH_BODY = 16 << 20  # 16 MiB: 100,000 ids of 64 characters as JSON lines fit
OTHER_BODY = 64 << 10  # any other route reads no body


@dataclass(frozen=True)
class ServeSettings:
    """A server's configuration: the party (`party.toml`), its files and its limits."""

    party: PartyConfig
    tokens_file: Path
    access_log: Path
    session_timeout: float = 60.0  # seconds until a decision session's deadline
    batch_timeout: float = 3600.0  # seconds until a batch job's session's deadline
    max_inflight: int = 8  # sessions this server has at the daemon at once (its queue: 16)
    max_jobs: int = 64  # batch jobs kept (finished ones are dropped oldest first)
    job_ttl: float = 3600.0  # seconds a finished job's result stays available
    status_timeout: float = 2.0  # seconds for the daemon's status (readyz, metrics)

    @classmethod
    def for_config(cls, config: str | Path, **limits: float) -> ServeSettings:
        """Settings for the party of `config`, its files in that file's folder."""
        cfg = load_party_config(config)
        folder = Path(config).resolve().parent
        return cls(cfg, folder / TOKENS_FILE, folder / ACCESS_LOG, **limits)  # type: ignore[arg-type]
