"""What a daemon offers: registry versions whose files match the signed digests, nothing else."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon.models import ModelBook, split_ref
from mpc_credit.consortium.model_parts import model_parts, publish_fields
from mpc_credit.consortium.records import (
    APPROVE,
    CHALLENGER,
    PUBLISH,
    Record,
    make_record,
    parse_record,
)
from mpc_credit.consortium.registry import RegistryError
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.errors import UsageError
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL

BASE = load_model(MODEL)
REF1 = f"{BASE.name}@1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("consortium")
    init_consortium(out, MODEL)
    return out


def book(folder: Path, party: str) -> ModelBook:
    cfg = load_party_config(folder / party / "party.toml")
    return ModelBook(cfg, load_consortium(cfg.consortium_file))


def bank_publishes(folder: Path, books: dict[str, ModelBook], status: str) -> Record:
    """bank's signed record publishing the demo model as version 2 (both modes, score)."""
    cons = books["bank"].cons
    body = publish_fields(
        BASE,
        cons,
        owner="bank",
        version=2,
        modes=("shared", "secret"),
        reveal=("score",),
        status=status,
    )
    key = load_signing_key(folder / "bank" / "signing.key")
    seq = books["bank"].registry.next_seq("bank")
    return parse_record(make_record(key, PUBLISH, "bank", seq, **body), cons)


def test_the_consortium_files_model_is_served_as_version_1(folder: Path) -> None:
    for party in ("bank", "bureau", "telco"):
        b = book(folder, party)
        assert b.problems == []
        # by ID@1, and by its bare id as requests named it before the registry
        assert set(b.models) == {(r, m) for r in (REF1, BASE.name) for m in ("shared", "secret")}
        assert b.resolve(None).ref == REF1 and b.resolve(BASE.name).ref == REF1
        assert b.resolve(REF1).digest == BASE.digest()
    with pytest.raises(UsageError, match=r"'nope@2' is not in the registry"):
        b.resolve("nope@2")
    with pytest.raises(UsageError, match=r"expected ID or ID@VERSION"):
        split_ref("x@01")


def test_a_file_that_is_not_the_registered_model_is_one_line_and_not_offered(
    folder: Path, tmp_path: Path
) -> None:
    cfg = load_party_config(folder / "telco" / "party.toml")
    cons = load_consortium(cfg.consortium_file)
    other = tmp_path / "other.json"
    bureau_part = json.loads((folder / "bureau" / cfg.models[BASE.name]["shared"].name).read_text())
    other.write_text(json.dumps(bureau_part))
    swapped = {BASE.name: {"shared": other, "secret": cfg.models[BASE.name]["secret"]}}
    b = ModelBook(replace(cfg, models=swapped), cons)
    assert set(b.models) == {(REF1, "secret"), (BASE.name, "secret")}
    assert b.problems == [f"{REF1} (shared) not offered: {other}: is bureau's part, not telco's"]


def test_a_published_version_serves_once_approved_and_its_parts_are_stored(
    tmp_path: Path,
) -> None:
    folder = tmp_path
    init_consortium(folder, MODEL)
    books = {p: book(folder, p) for p in ("bank", "bureau", "telco")}
    cons = books["bank"].cons
    keys = {p: load_signing_key(folder / p / "signing.key") for p in books}
    model = load_model(MODEL)
    pub = bank_publishes(folder, books, CHALLENGER)
    seq = pub.seq
    body = {k: v for k, v in pub.wire.items() if k not in ("type", "kind", "author", "seq", "sig")}
    parts = model_parts(model, cons, "bank", ("shared", "secret"))
    ref2 = f"{BASE.name}@2"
    for party, b in books.items():
        if party == "bank":
            b.store.store_full(pub, model)
        else:
            for mode, part in parts[party].items():
                b.store.store_part(pub, mode, part)
        assert b.take(pub) is True and b.take(pub) is False
        assert (ref2, "shared") not in b.models  # not approved yet
    with pytest.raises(UsageError, match=r"@2 is not in service \(awaiting approval of bureau"):
        books["bank"].resolve(ref2)
    for who in ("bureau", "telco"):
        n = books[who].registry.next_seq(who)
        fields = {"model": BASE.name, "version": 2, "digest": model.digest()}
        approval = parse_record(make_record(keys[who], APPROVE, who, n, **fields), cons)
        for b in books.values():
            b.take(approval)
    for party in books:
        b = book(folder, party)  # a restart: read back from registry.jsonl and the files
        assert {(ref2, "shared"), (ref2, "secret"), (REF1, "shared")} <= set(b.models)
        assert b.resolve(None).ref == REF1 and b.registry.challenger().ref == ref2  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="already published"):
        books["telco"].take(
            parse_record(make_record(keys["bank"], PUBLISH, "bank", seq + 5, **body), cons)
        )
