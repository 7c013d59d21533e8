"""Certificates for the parties' mutual TLS, in the layout MPyC's `--ssl` expects.

A consortium CA signs one certificate per party with common name `MPyC party {pid}`
(the name MPyC checks); keys are ECDSA P-256. A party's folder gets
`.config/mpyc_ca.crt`, `.config/party_{pid}.crt` and `.config/party_{pid}.key` (0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.oid import NameOID

VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class Authority:
    """A consortium certificate authority."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def new_authority(common_name: str = "mpc-credit consortium CA") -> Authority:
    """A self-signed CA certificate and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def party_name(pid: int) -> str:
    """The certificate name MPyC checks for party `pid`."""
    return f"MPyC party {pid}"


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_cert(
    ca: Authority,
    common_name: str,
    *,
    server: bool = False,
    client: bool = False,
    names: Sequence[str] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate from `ca`, for TLS server and/or client use.

    The subject alternative names are `names` (IP addresses or DNS names), or the
    common name itself.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [u for u, on in ((EKU.SERVER_AUTH, server), (EKU.CLIENT_AUTH, client)) if on]
    cert = (
        _builder(_name(common_name), ca.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_alt_name(n) for n in names or [common_name]]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def issue(ca: Authority, pid: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Key and certificate of MPC party `pid`, valid for TLS client and server use."""
    return issue_cert(ca, party_name(pid), server=True, client=True)


def key_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (write it with `write_private`)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (mode 0600 from creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def write_party_tls(
    folder: str | Path,
    pid: int,
    ca: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
) -> Path:
    """Lay out one party's TLS files under `folder/.config`; returns that folder."""
    conf = Path(folder) / ".config"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "mpyc_ca.crt").write_bytes(pem(ca))
    (conf / f"party_{pid}.crt").write_bytes(pem(cert))
    write_private(conf / f"party_{pid}.key", key_pem(key))
    return Path(folder)


def write_authority(folder: Path, stem: str, ca: Authority) -> None:
    """A CA's certificate and (0600) key as `folder/stem.crt` and `folder/stem.key`."""
    (folder / f"{stem}.crt").write_bytes(pem(ca.cert))
    write_private(folder / f"{stem}.key", key_pem(ca.key))


def ephemeral_consortium(root: str | Path, n: int) -> list[Path]:
    """A throwaway CA and n party folders under `root`, each holding only its own key."""
    ca = new_authority("mpc-credit session CA")
    folders = []
    for pid in range(n):
        key, cert = issue(ca, pid)
        folders.append(write_party_tls(Path(root) / f"party{pid}", pid, ca.cert, key, cert))
    return folders
