"""A party's copy of the model registry on disk: its records, and the model files they sign.

In the party's folder:
  registry.jsonl                 every registry record this party holds, one per line, in the
                                 order it learnt them (appended and fsynced before use)
  models/ID@VERSION/MODE.json    its part of each published version, per mode
  models/ID@VERSION/model.json   the full model, at the model owner only

A file is used only when its SHA-256 matches what the version's publish record signed for it
(`ServedModels`): a mismatch is one line naming the file and the version, and that version
is not offered while the others still are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.model_parts import part_digest
from mpc_credit.consortium.records import Record, parse_record, record_bytes
from mpc_credit.consortium.registry import ModelVersion, Registry
from mpc_credit.errors import MpcCreditError, UsageError
from mpc_credit.files import fsync_dir
from mpc_credit.names import join
from mpc_credit.scorecard.model import Scorecard, dump_model, from_dict

REGISTRY_FILE = "registry.jsonl"
MODELS_DIR = "models"
FULL = "model"  # the file name of the full model, at its owner


class StoreError(UsageError):
    """The registry file or a model file cannot be read as it must be; names the file."""


@dataclass
class ServedModels:
    """The model files a party can serve now, and why any other version is not offered."""

    models: dict[tuple[str, int, str], Scorecard] = field(default_factory=dict)  # id, ver, mode
    problems: list[str] = field(default_factory=list)


class ModelStore:
    """The registry records and model files of one party, under its folder."""

    def __init__(self, folder: Path, cons: Consortium, party: str) -> None:
        self.folder, self.cons, self.party = folder, cons, party
        self.path = folder / REGISTRY_FILE
        self.models_dir = folder / MODELS_DIR

    # ------------------------------------------------------------ records

    def load(self) -> tuple[Registry, list[str]]:
        """The registry from the file (none yet: empty), and the records it refused, one line
        each; a line that is not a valid record stops here, naming the file and line."""
        registry = Registry(self.cons)
        records = list(self._read())
        refused = registry.add_all(records)
        return registry, [f"{self.path}: {why}" for why in refused]

    def _read(self) -> Iterator[Record]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read: {exc.strerror}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield parse_record(line, self.cons)
            except MessageError as exc:
                raise StoreError(f"{self.path}, line {n}: not a valid record: {exc}") from None

    def append(self, record: Record) -> None:
        """Add one record to the file, durably (fsynced, and the folder on first write)."""
        new = not self.path.exists()
        with open(self.path, "ab") as out:
            out.write(record_bytes(record.wire) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        if new:
            fsync_dir(self.folder)

    # ------------------------------------------------------------ model files

    def file(self, model: str, version: int, name: str) -> Path:
        """`models/ID@VERSION/NAME.json`, checked to stay inside the models folder."""
        folder = join(self.models_dir, f"{model}@{version}", "", "model version", at=True)
        return join(folder, name, ".json", "model file")

    def store_part(self, publish: Record, mode: str, part: Scorecard) -> Path:
        """Keep this party's part of `publish` in `mode` once it matches the signed digest."""
        expected = publish.parts.get(self.party, {}).get(mode)
        if expected is None or part_digest(part) != expected:
            raise StoreError(
                f"the {mode} part of {publish.ref} does not match the digest its owner signed"
            )
        return self._write(self.file(publish.model, publish.version, mode), part)

    def store_full(self, publish: Record, model: Scorecard) -> Path:
        """Keep the full model of a version this party published (its owner)."""
        if model.digest() != publish.digest:
            raise StoreError(f"the model file is not the one {publish.ref} signed")
        return self._write(self.file(publish.model, publish.version, FULL), model)

    def _write(self, path: Path, model: Scorecard) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        dump_model(model, path)  # complete or not at all, fsynced
        return path

    def served(self, registry: Registry) -> ServedModels:
        """Every in-service version's files this party holds, each checked against the
        publish record; a missing or altered file is a problem line, not an error."""
        out = ServedModels()
        for version in registry.versions():
            if version.in_service and not version.publish.genesis:  # those: party.toml's files
                self._serve(version, out)
        return out

    def _serve(self, version: ModelVersion, out: ServedModels) -> None:
        pub = version.publish
        for mode in pub.modes:
            name = FULL if pub.author == self.party else mode
            path = self.file(pub.model, pub.version, name)
            try:
                model = self._load(path)
            except MpcCreditError as exc:
                out.problems.append(f"{pub.ref} ({mode}) not offered: {exc}")
                continue
            digest = model.digest() if name == FULL else part_digest(model)
            wanted = pub.digest if name == FULL else pub.parts.get(self.party, {}).get(mode)
            if digest != wanted:
                out.problems.append(
                    f"{pub.ref} ({mode}) not offered: {path} does not match the registry's digest"
                )
                continue
            out.models[(pub.model, pub.version, mode)] = model

    def _load(self, path: Path) -> Scorecard:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{path}: file not found") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: not readable as JSON: {exc}") from None
        return from_dict(data, str(path))
