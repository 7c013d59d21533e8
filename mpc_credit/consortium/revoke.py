"""`pki revoke`: put a party's certificates on the consortium's revocation lists.

Each CA keeps one certificate revocation list (PEM, signed by that CA): the MPC CA's in
`crl/mpyc_crl.pem`, which every party places at `<party folder>/.config/mpyc_crl.pem` for
its MPC links, and the control-plane CA's in `crl/mqtt_crl.pem`, which the generated
mosquitto configuration names as its `crlfile`. Revoking rewrites both lists with one
more entry each (a list only grows) and copies the MPC list into every party folder the
operator's consortium folder holds, ready to hand out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mpc_credit.consortium import pki
from mpc_credit.consortium.config import check_party_name, load_consortium
from mpc_credit.errors import UsageError

MPC_CRL = "crl/mpyc_crl.pem"
MQTT_CRL = "crl/mqtt_crl.pem"
PARTY_CRL = ".config/mpyc_crl.pem"  # where a party's MPC links read the list
MAX_CRL_BYTES = 4 * 1024 * 1024


def revoke_serials(
    ca: pki.Authority,
    serials: Iterable[int],
    previous: x509.CertificateRevocationList | None = None,
) -> x509.CertificateRevocationList:
    """`ca`'s revocation list: the entries of `previous` (which `ca` must have signed) and
    `serials`, numbered one past `previous`; valid as long as a certificate."""
    now = dt.datetime.now(dt.timezone.utc)
    entries: dict[int, x509.RevokedCertificate] = {}
    number = 1
    if previous is not None:
        if not previous.is_signature_valid(ca.key.public_key()):
            raise UsageError("the existing revocation list was not signed by its CA")
        entries = {r.serial_number: r for r in previous}
        number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    for serial in serials:
        if serial not in entries:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
            entries[serial] = entry.build()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + pki.VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in entries.values():
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256())


def load_crl(path: Path) -> x509.CertificateRevocationList | None:
    """The PEM revocation list at `path`, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        return x509.load_pem_x509_crl(pki.read_bounded(path, "revocation list", MAX_CRL_BYTES))
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM revocation list: {exc}") from None


def _add(out: Path, stem: str, cert_path: Path, crl_path: Path) -> None:
    """Put the certificate at `cert_path` on the list of CA `out/ca/stem`."""
    ca = pki.load_authority(out / "ca", stem)
    cert = pki.load_cert(cert_path)
    if not pki.issued_by(cert, ca.cert):
        raise UsageError(f"{cert_path}: not issued by {out / 'ca' / stem}.crt")
    crl = revoke_serials(ca, [cert.serial_number], load_crl(crl_path))
    crl_path.parent.mkdir(parents=True, exist_ok=True)
    crl_path.write_bytes(pki.pem(crl))


def revoke_party(consortium_dir: str | Path, name: str) -> list[Path]:
    """Revoke party `name`'s MPC and control-plane certificates (as issued into
    `consortium_dir/name/`); returns the revocation lists written."""
    out = Path(consortium_dir)
    cons = load_consortium(out / "consortium.json")
    check_party_name(name, "party")
    if name not in cons.names:
        raise UsageError(f"party {name!r} is not in {out / 'consortium.json'}")
    me = cons.party(name)
    folder = out / name
    _add(out, "mpc-ca", folder / ".config" / f"party_{me.pid}.crt", out / MPC_CRL)
    _add(out, "mqtt-ca", folder / "mqtt" / "client.crt", out / MQTT_CRL)
    written = [out / MPC_CRL, out / MQTT_CRL]
    for p in cons.parties:
        if (out / p.name / ".config").is_dir():
            target = out / p.name / PARTY_CRL
            target.write_bytes((out / MPC_CRL).read_bytes())
            written.append(target)
    return written


def revoked_serials(path: Path) -> set[int]:
    """The serial numbers on the revocation list at `path` (none when there is no list)."""
    crl = load_crl(path)
    return set() if crl is None else {r.serial_number for r in crl}
