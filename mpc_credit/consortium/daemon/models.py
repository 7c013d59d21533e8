"""The model versions a daemon serves: its registry, the files behind it, each checked.

A version is offered in a mode when the registry has it in service (consortium/registry.py)
and this party holds its file for that mode with the digest the version's publish record
signed: its part (`models/ID@VERSION/MODE.json`), or at the model owner the full model. A
model of the consortium file (ID@1 of a consortium from before the registry) is read from
the party's `[models.ID]` files, checked against the digest in the consortium file. A file
that is missing or not the registered one is one line in `problems`, and that version is not
offered while the others still are: the daemon never claims a model it cannot serve.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from mpc_credit.consortium.config import Consortium, PartyConfig
from mpc_credit.consortium.model_store import ModelStore, ServedModels
from mpc_credit.consortium.records import Record
from mpc_credit.consortium.registry import ModelVersion, RegistryError
from mpc_credit.errors import MpcCreditError, UsageError
from mpc_credit.scorecard.model import Scorecard, load_model
from mpc_credit.vocabulary import MODES

log = logging.getLogger("mpc_credit.daemon")
ModelKey = tuple[str, str]  # (ID@VERSION, mode)


def split_ref(ref: str) -> tuple[str, int | None]:
    """`ID@VERSION` as (ID, VERSION); a bare `ID` as (ID, None)."""
    model, at, version = ref.partition("@")
    if not at:
        return model, None
    if not version.isdigit() or version.startswith("0"):
        raise UsageError(f"model {ref!r}: expected ID or ID@VERSION (a version from 1)")
    return model, int(version)


class ModelBook:
    """This party's registry and the scorecards it can serve now, by (ID@VERSION, mode)."""

    def __init__(self, cfg: PartyConfig, cons: Consortium) -> None:
        self.party, self.cons = cfg.party, cons
        self.legacy: Mapping[str, Mapping[str, Path]] = cfg.models
        self.store = ModelStore(cfg.folder, cons, cfg.party)
        self.registry, refused = self.store.load()
        for line in refused:
            log.warning("%s", line)
        self.models: dict[ModelKey, Scorecard] = {}
        self.problems: list[str] = []
        self.reload()

    def reload(self) -> list[str]:
        """Check every in-service version's files again; the problem lines, each logged once
        when new."""
        served = self.store.served(self.registry)
        self._legacy(served)
        fresh = [p for p in served.problems if p not in self.problems]
        for line in fresh:
            log.warning("%s", line)
        self.models = {(f"{m}@{v}", mode): s for (m, v, mode), s in served.models.items()}
        for version in self.registry.versions():  # a consortium-file model by its bare id too,
            if version.publish.genesis:  # as requests named it before the registry
                for mode in MODES:
                    if (version.ref, mode) in self.models:
                        self.models[(version.id, mode)] = self.models[(version.ref, mode)]
        self.problems = served.problems
        return fresh

    def _legacy(self, served: ServedModels) -> None:
        """The consortium file's models (ID@1) from the party's [models.ID] files."""
        for version in self.registry.versions():
            if not (version.publish.genesis and version.in_service):
                continue
            for mode, path in self.cfg_files(version.id).items():
                try:
                    model = load_model(path)
                except MpcCreditError as exc:
                    served.problems.append(f"{version.ref} ({mode}) not offered: {exc}")
                    continue
                why = self._mismatch(model, version, mode)
                if why is not None:
                    served.problems.append(f"{version.ref} ({mode}) not offered: {path}: {why}")
                    continue
                served.models[(version.id, version.version, mode)] = model

    def cfg_files(self, model_id: str) -> dict[str, Path]:
        """The party's `[models.ID]` files of a consortium-file model, by mode."""
        return dict(self.legacy.get(model_id, {}))

    def _mismatch(self, model: Scorecard, version: ModelVersion, mode: str) -> str | None:
        """Why `model` is not this party's file of `version` in `mode`, or None."""
        if model.digest() != version.digest:
            return "not the model the consortium registered (another digest)"
        part = model.part
        if part is None:
            return None if self.party == version.owner else "a full model at a non-owner"
        if part.mode != mode:
            return f"is a {part.mode}-mode part, listed as {mode}"
        if part.owner != self.party:
            return f"is {part.owner}'s part, not {self.party}'s"
        return None

    # ------------------------------------------------------------ changes

    def take(self, record: Record) -> bool:
        """Add a verified record: durably first (registry.jsonl), then to the registry, then
        the files are checked again. False when already held; RegistryError when refused."""
        reason = self.registry.refusal(record)
        if reason is not None:
            raise RegistryError(reason)
        if record.key in self.registry.records:
            return False
        self.store.append(record)
        self.registry.add(record)
        self.reload()
        return True

    # ------------------------------------------------------------ questions

    def resolve(self, model: str | None) -> ModelVersion:
        """The version a request names: `ID@VERSION`, `ID` (its champion, challenger or
        newest version in service) or nothing (the champion); UsageError naming why not."""
        if model is None:
            champion = self.registry.champion()
            if champion is None:
                raise UsageError("no champion model in service; name one with --model-id")
            return champion
        model_id, number = split_ref(model)
        found = self.registry.version(model_id, number)
        if found is None:
            raise UsageError(f"model {model!r} is not in the registry")
        if not found.in_service:
            raise UsageError(f"model {found.ref} is not in service ({self.why_not(found)})")
        return found

    def why_not(self, version: ModelVersion) -> str:
        """Why `version` is not in service, in a few words."""
        if version.refused:
            return "refused by " + ", ".join(sorted(version.refused))
        if version.pending:
            return "awaiting approval of " + ", ".join(version.pending)
        return version.status

    def owner_of(self, ref: str) -> str:
        """The model owner of version `ref` (ID@VERSION) in the registry."""
        model, number = split_ref(ref)
        found = self.registry.version(model, number)
        if found is None:
            raise UsageError(f"model {ref!r} is not in the registry")
        return found.owner

    def offers(self, ref: str, mode: str) -> bool:
        return (ref, mode) in self.models
