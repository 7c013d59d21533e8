"""The model registry: records signed by their authors, folded the same whatever their order."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.model_parts import model_parts, part_digest, publish_fields
from mpc_credit.consortium.records import (
    APPROVE,
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    PUBLISH,
    REFUSE,
    RETIRED,
    STATUS,
    Record,
    make_record,
    parse_record,
    record_bytes,
)
from mpc_credit.consortium.registry import Registry, RegistryError
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL
from tests.consortium.members import Members, members

BASE = load_model(MODEL)  # features of bank (owner), bureau and telco


class Authors:
    """Signs records for the parties of `m`, each with its own running sequence number."""

    def __init__(self, m: Members) -> None:
        self.m = m
        self.seq: dict[str, int] = {}

    def record(self, author: str, kind: str, **body: Any) -> Record:
        self.seq[author] = self.seq.get(author, 0) + 1
        wire = make_record(self.m.keys[author], kind, author, self.seq[author], **body)
        return parse_record(record_bytes(wire), self.m.cons)

    def publish(self, version: int, status: str = CHAMPION, model: Any = BASE, **kw: Any) -> Record:
        body = publish_fields(
            model,
            self.m.cons,
            owner=kw.pop("author", "bank"),
            version=version,
            modes=("shared", "secret"),
            reveal=("score", "decision"),
            status=status,
        )
        return self.record(kw.get("by", "bank"), PUBLISH, **body)

    def decide(self, who: str, pub: Record, kind: str = APPROVE, **kw: Any) -> Record:
        return self.record(who, kind, model=pub.model, version=pub.version, digest=pub.digest, **kw)

    def status(self, pub: Record, status: str, who: str = "bank") -> Record:
        return self.record(
            who, STATUS, model=pub.model, version=pub.version, digest=pub.digest, status=status
        )


@pytest.fixture
def m() -> Members:
    """The demo consortium without models in its file, bank its model owner."""
    base = members().with_policy(model_owners=("bank",))
    return replace(base, cons=replace(base.cons, models=()))


def approve_all(a: Authors, reg: Registry, pub: Record) -> None:
    for who in ("bureau", "telco"):
        reg.add(a.decide(who, pub))


def statuses(reg: Registry) -> dict[str, str]:
    return {v.ref: v.status for v in reg.versions()}


def test_a_version_serves_once_every_feature_owner_approved(m: Members) -> None:
    a, reg = Authors(m), Registry(m.cons)
    v1 = a.publish(1)
    assert reg.add(v1) is True
    assert statuses(reg) == {f"{BASE.name}@1": CANDIDATE}
    assert reg.versions()[0].pending == ("bureau", "telco")
    reg.add(a.decide("bureau", v1))
    assert reg.champion() is None
    reg.add(a.decide("telco", v1))
    champion = reg.champion()
    assert champion is not None and champion.ref == f"{BASE.name}@1" and champion.in_service
    assert champion.approved == ("bureau", "telco")


def test_new_champion_waits_for_approval_then_replaces_the_old(m: Members) -> None:
    a, reg = Authors(m), Registry(m.cons)
    v1 = a.publish(1)
    reg.add(v1)
    approve_all(a, reg, v1)
    v2 = a.publish(2)
    reg.add(v2)
    reg.add(a.decide("bureau", v2))
    assert statuses(reg) == {f"{BASE.name}@1": CHAMPION, f"{BASE.name}@2": CANDIDATE}
    reg.add(a.decide("telco", v2))
    assert statuses(reg) == {f"{BASE.name}@1": CANDIDATE, f"{BASE.name}@2": CHAMPION}
    assert reg.version(BASE.name).version == 2  # type: ignore[union-attr]
    assert reg.version(BASE.name, 1).in_service  # type: ignore[union-attr]


def test_promote_a_challenger_then_retire_the_old_champion(m: Members) -> None:
    a, reg = Authors(m), Registry(m.cons)
    v1, v2 = a.publish(1), a.publish(2, CHALLENGER)
    for pub in (v1, v2):
        reg.add(pub)
        approve_all(a, reg, pub)
    assert statuses(reg) == {f"{BASE.name}@1": CHAMPION, f"{BASE.name}@2": CHALLENGER}
    reg.add(a.status(v2, CHAMPION))
    assert statuses(reg) == {f"{BASE.name}@1": CANDIDATE, f"{BASE.name}@2": CHAMPION}
    reg.add(a.status(v1, RETIRED))
    assert statuses(reg)[f"{BASE.name}@1"] == RETIRED
    assert not reg.version(BASE.name, 1).in_service  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match=r"@1 is retired: status refused"):
        reg.add(a.status(v1, CHAMPION))


def test_a_refusal_keeps_the_version_out_of_service_until_approved(m: Members) -> None:
    a, reg = Authors(m), Registry(m.cons)
    v1 = a.publish(1)
    reg.add(v1)
    reg.add(a.decide("bureau", v1))
    reg.add(a.decide("telco", v1, REFUSE, reason="uses a feature we do not allow"))
    (v,) = reg.versions()
    assert v.refused == {"telco": "uses a feature we do not allow"} and not v.in_service
    assert reg.champion() is None
    reg.add(a.decide("telco", v1))  # its later word counts
    assert reg.champion() is not None


def test_the_registry_is_the_same_whatever_order_the_records_arrive_in(m: Members) -> None:
    a = Authors(m)
    v1, v2, v3 = a.publish(1), a.publish(2, CHALLENGER), a.publish(3, CANDIDATE)
    records = [v1, v2, v3]
    for pub in (v1, v2, v3):
        records += [a.decide("bureau", pub), a.decide("telco", pub)]
    records += [a.status(v2, CHAMPION), a.status(v1, RETIRED)]
    seen = set()
    for seed in range(8):
        random.Random(seed).shuffle(records)
        reg = Registry(m.cons)
        assert reg.add_all(records) == []
        seen.add(tuple(sorted(statuses(reg).items())))
    assert seen == {
        ((f"{BASE.name}@1", RETIRED), (f"{BASE.name}@2", CHAMPION), (f"{BASE.name}@3", CANDIDATE))
    }


def test_refusals_name_the_rule(m: Members) -> None:
    a, reg = Authors(m), Registry(m.cons)
    v2 = a.publish(2)
    reg.add(v2)
    with pytest.raises(RegistryError, match=r"not newer than version 2 .*replayed or stale"):
        reg.add(a.publish(1))
    with pytest.raises(RegistryError, match=r"@2 is already published"):
        reg.add(a.publish(2))
    with pytest.raises(RegistryError, match=r"telco may not publish models"):
        reg.add(a.publish(3, by="telco", author="telco"))
    with pytest.raises(RegistryError, match=r"bank is not .*owner|bureau is not .*owner"):
        reg.add(a.status(v2, RETIRED, who="bureau"))
    with pytest.raises(RegistryError, match=r"names another digest"):
        reg.add(a.record("bureau", APPROVE, model=v2.model, version=2, digest="0" * 64))
    assert reg.add(v2) is False  # the same record again: nothing new
    forged = replace(v2, wire={**v2.wire, "status": CANDIDATE})
    with pytest.raises(RegistryError, match=r"record 1 differs .*rewritten"):
        reg.add(forged)


def test_a_prohibited_feature_is_refused_naming_it(m: Members) -> None:
    feature = BASE.features[0].name
    m2 = m.with_policy(prohibited_features=(feature.upper(),), model_owners=("bank",))
    a, reg = Authors(m2), Registry(m2.cons)
    with pytest.raises(RegistryError, match=rf"uses prohibited feature {feature}"):
        reg.add(a.publish(1))


def test_a_record_signed_by_another_party_than_its_author_is_refused(m: Members) -> None:
    a = Authors(m)
    body = publish_fields(
        BASE, m.cons, owner="bank", version=1, modes=("shared",), reveal=("score",), status=CHAMPION
    )
    wire = make_record(m.keys["telco"], PUBLISH, "bank", 1, **body)  # telco's key, bank's name
    with pytest.raises(MessageError, match="not signed by bank"):
        parse_record(record_bytes(wire), m.cons)
    assert a.publish(1).kind == PUBLISH


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a\x00b", "c:\\x", "a\\b"])
def test_a_model_name_that_is_not_a_safe_name_is_refused(m: Members, name: str) -> None:
    body = publish_fields(
        replace(BASE, name=name),
        m.cons,
        owner="bank",
        version=1,
        modes=("shared",),
        reveal=("score",),
        status=CHAMPION,
    )
    wire = make_record(m.keys["bank"], PUBLISH, "bank", 1, **body)
    with pytest.raises(MessageError, match="field 'model': not a safe name"):
        parse_record(record_bytes(wire), m.cons)


def test_parts_are_signed_per_party_and_mode(m: Members) -> None:
    pub = Authors(m).publish(1)
    parts = model_parts(BASE, m.cons, "bank", ("shared", "secret"))
    assert set(pub.parts) == {"bureau", "telco"}
    for party, per in parts.items():
        for mode, part in per.items():
            assert pub.parts[party][mode] == part_digest(part)
            assert part.part is not None and part.part.owner == party
    assert pub.parts["bureau"]["shared"] != pub.parts["telco"]["shared"]


def test_the_store_keeps_records_and_offers_only_files_that_match(
    m: Members, tmp_path: Any
) -> None:
    from mpc_credit.consortium.model_store import ModelStore, StoreError

    a = Authors(m)
    v1 = a.publish(1)
    records = [v1, a.decide("bureau", v1), a.decide("telco", v1)]
    stores = {p: ModelStore(tmp_path / p, m.cons, p) for p in m.cons.names}
    parts = model_parts(BASE, m.cons, "bank", ("shared", "secret"))
    for party, store in stores.items():
        store.folder.mkdir()
        for r in records:
            store.append(r)
        if party == "bank":
            store.store_full(v1, BASE)
        else:
            for mode, part in parts[party].items():
                store.store_part(v1, mode, part)
    for store in stores.values():
        registry, refused = store.load()
        assert refused == [] and registry.champion() is not None
        served = store.served(registry)
        assert served.problems == [] and set(served.models) == {
            (BASE.name, 1, "shared"),
            (BASE.name, 1, "secret"),
        }
    with pytest.raises(StoreError, match=r"secret part of .*@1 does not match"):
        stores["telco"].store_part(v1, "secret", parts["bureau"]["secret"])
    # an altered file: one line, that version not offered
    path = stores["telco"].file(BASE.name, 1, "shared")
    path.write_text(path.read_text().replace('"cutoff": ', '"cutoff": 1'))
    served = stores["telco"].served(stores["telco"].load()[0])
    assert set(served.models) == {(BASE.name, 1, "secret")}
    assert served.problems == [
        f"{BASE.name}@1 (shared) not offered: {path} does not match the registry's digest"
    ]
    stores["bureau"].path.write_text("{not json\n")
    with pytest.raises(StoreError, match=r"registry.jsonl, line 1: not a valid record"):
        stores["bureau"].load()


def test_a_publish_request_carries_the_owners_record_and_nothing_else(m: Members) -> None:
    from mpc_credit.consortium.publish_request import (
        PUBLISH_LABEL,
        decode_publish_request,
        new_publish_request,
    )
    from mpc_credit.consortium.signing import verify

    a = Authors(m)
    pub = a.publish(1)
    req = new_publish_request(m.keys["bank"], pub, timeout=30.0)
    got = decode_publish_request(req.to_json(), m.cons)
    assert got.record == pub and got.requester == "bank"
    assert verify(PUBLISH_LABEL, got.body(), m.cons.party("bank").public_key)
    assert Registry(m.cons).refusal(got.record) is None
    # bureau wrapping bank's record: the record is not the requester's
    forged = new_publish_request(m.keys["bureau"], pub, timeout=30.0).body()
    forged["requester"] = "bureau"
    with pytest.raises(MessageError, match="not a publish record of the requester"):
        decode_publish_request(record_bytes(forged), m.cons)
    # no bin edge and no point of the model on the broker: only names and digests
    wire = req.to_json().decode()
    for feature in BASE.features:
        for edge in getattr(feature, "edges", ()):
            assert f"{edge}," not in wire and f"{edge}]" not in wire
    assert '"points"' not in wire and '"edges"' not in wire


def test_a_model_of_the_consortium_file_is_version_1_and_can_be_replaced() -> None:
    """Migration: a consortium from before the registry keeps its model, as the champion
    ID@1; the owner publishes ID@2 and retires ID@1 without touching the file."""
    legacy = members()  # the demo model in consortium.json, bank its owner
    a, reg = Authors(legacy), Registry(legacy.cons)
    (v1,) = reg.versions()
    assert (v1.ref, v1.status, v1.in_service) == (f"{BASE.name}@1", CHAMPION, True)
    assert v1.digest == BASE.digest() and v1.publish.genesis
    with pytest.raises(RegistryError, match=r"@1 is already published"):
        reg.add(a.publish(1))
    v2 = a.publish(2)
    reg.add(v2)
    approve_all(a, reg, v2)
    assert statuses(reg) == {f"{BASE.name}@1": CANDIDATE, f"{BASE.name}@2": CHAMPION}
    reg.add(a.status(v1.publish, RETIRED))
    assert statuses(reg)[f"{BASE.name}@1"] == RETIRED
    assert reg.next_seq("bank") == a.seq["bank"] + 1


def test_a_snapshot_carries_its_partys_own_records_only(m: Members) -> None:
    from mpc_credit.consortium.records import decode_snapshot, snapshot

    a = Authors(m)
    v1 = a.publish(1)
    approval = a.decide("telco", v1)
    got = decode_snapshot(snapshot("bank", [approval, v1]), m.cons, "bank")
    assert got == [v1]
    with pytest.raises(MessageError, match="not the party of the topic"):
        decode_snapshot(snapshot("bank", [v1]), m.cons, "telco")
    smuggled = record_bytes({"type": "registry", "party": "telco", "records": [dict(v1.wire)]})
    with pytest.raises(MessageError, match="a record of another party"):
        decode_snapshot(smuggled, m.cons, "telco")
    tampered = record_bytes(
        {"type": "registry", "party": "bank", "records": [{**v1.wire, "version": 7}]}
    )
    with pytest.raises(MessageError, match="not signed by bank"):
        decode_snapshot(tampered, m.cons, "bank")
