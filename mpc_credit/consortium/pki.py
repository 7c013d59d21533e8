"""Certificates for the parties' mutual TLS and the control plane, and their revocation.

A consortium CA signs one certificate per party with common name `MPyC party {pid}`
(the name MPyC checks); keys are ECDSA P-256. A party's folder gets
`.config/mpyc_ca.crt`, `.config/party_{pid}.crt` and `.config/party_{pid}.key` (0600).
Certificates are issued either for a fresh key (`issue_cert`) or for the public key of a
certificate signing request made elsewhere (`certify`, `load_csr`), so that a party's
private key never has to leave its machine (mpc_credit.consortium.enroll); revocation lists
are in mpc_credit.consortium.revoke. Folders that hold private keys are created with mode
0700, key files with mode 0600.

(A little over 300 lines on purpose: every certificate, key and request file operation of the
project in one place, so there is one issuer.)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.oid import NameOID

from mpc_credit.errors import UsageError

VALIDITY = dt.timedelta(days=825)
PRIVATE_DIR = 0o700
MAX_PEM_BYTES = 16 * 1024  # a certificate, CSR or CRL from another machine


@dataclass(frozen=True)
class Authority:
    """A consortium certificate authority."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, the only kind the consortium certifies."""
    return ec.generate_private_key(ec.SECP256R1())


def new_authority(common_name: str = "mpc-credit consortium CA") -> Authority:
    """A self-signed CA certificate and its key."""
    key = new_key()
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def party_name(pid: int) -> str:
    """The certificate name MPyC checks for party `pid`."""
    return f"MPyC party {pid}"


def subject_cn(cert: x509.Certificate) -> str:
    """The certificate's subject common name ("" when it has none)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def certify(
    ca: Authority,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    *,
    server: bool = False,
    client: bool = False,
    names: Sequence[str] = (),
) -> x509.Certificate:
    """`ca`'s certificate binding `public_key` to `common_name`, for TLS server and/or
    client use; the subject alternative names are `names` (IP addresses or DNS names), or
    the common name itself."""
    usages = [u for u, on in ((EKU.SERVER_AUTH, server), (EKU.CLIENT_AUTH, client)) if on]
    # the key identifiers: Python 3.13's TLS (VERIFY_X509_STRICT) refuses a certificate
    # without the authority key identifier
    issuer = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key())
    return (
        _builder(_name(common_name), ca.cert.subject, public_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_alt_name(n) for n in names or [common_name]]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(issuer, critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def issue_cert(
    ca: Authority,
    common_name: str,
    *,
    server: bool = False,
    client: bool = False,
    names: Sequence[str] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate from `ca` (see `certify`)."""
    key = new_key()
    return key, certify(
        ca, key.public_key(), common_name, server=server, client=client, names=names
    )


def issue(ca: Authority, pid: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Key and certificate of MPC party `pid`, valid for TLS client and server use."""
    return issue_cert(ca, party_name(pid), server=True, client=True)


# ---------------------------------------------------------------- requests from elsewhere


def new_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.CertificateSigningRequest:
    """A certificate signing request for `key`; the CA chooses the name it certifies."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(common_name))
        .sign(key, hashes.SHA256())
    )


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """A PEM signing request for a P-256 key, its signature checked (proof that the
    requester holds the key); errors name the file."""
    data = read_bounded(path, "certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(data)
        key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a PEM certificate signing request: {exc}") from None
    if not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"):
        raise UsageError(f"{path}: the request's key is not an ECDSA P-256 key")
    if not signed:
        raise UsageError(f"{path}: the request's signature does not match its key")
    return csr


def public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """A public key's DER SubjectPublicKeyInfo, to compare keys."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def csr_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    """The ECDSA public key a signing request is for (`load_csr` refuses any other)."""
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError("a certificate signing request for a key that is not ECDSA")
    return key


def same_key(a: ec.EllipticCurvePublicKey, b: object) -> bool:
    """Whether `b` is the same public key as `a`."""
    return isinstance(b, ec.EllipticCurvePublicKey) and public_der(a) == public_der(b)


def key_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (write it with `write_private`)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem(
    obj: x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList,
) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def private_dir(path: Path) -> Path:
    """`path` as a folder; created with mode 0700 (only its owner may list or enter it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (mode 0600 from creation on)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def read_bounded(path: Path, what: str, limit: int = MAX_PEM_BYTES) -> bytes:
    """The bytes of a small file (a PEM file, a request) of at most `limit` bytes; errors
    name the file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{path}: {what} is larger than {limit} bytes")
    return data


def load_cert(path: Path) -> x509.Certificate:
    """A PEM certificate; errors name the file."""
    try:
        return x509.load_pem_x509_certificate(read_bounded(path, "certificate"))
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM certificate: {exc}") from None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` signed `cert`."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def write_party_tls(
    folder: str | Path,
    pid: int,
    ca: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
) -> Path:
    """Lay out one party's TLS files under `folder/.config`; returns that folder."""
    conf = private_dir(Path(folder) / ".config")
    (conf / "mpyc_ca.crt").write_bytes(pem(ca))
    (conf / f"party_{pid}.crt").write_bytes(pem(cert))
    write_private(conf / f"party_{pid}.key", key_pem(key))
    return Path(folder)


def write_authority(folder: Path, stem: str, ca: Authority) -> None:
    """A CA's certificate and (0600) key as `folder/stem.crt` and `folder/stem.key`."""
    (folder / f"{stem}.crt").write_bytes(pem(ca.cert))
    write_private(folder / f"{stem}.key", key_pem(ca.key))


def load_authority(folder: Path, stem: str) -> Authority:
    """The CA that `write_authority` wrote; errors name the file."""
    cert = load_cert(folder / f"{stem}.crt")
    path = folder / f"{stem}.key"
    key = load_key(path)
    if not same_key(key.public_key(), cert.public_key()):
        raise UsageError(f"{path}: not the key of {folder / f'{stem}.crt'}")
    return Authority(key, cert)


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An ECDSA private key from a PEM file; errors name the file."""
    try:
        key = serialization.load_pem_private_key(read_bounded(path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{path}: not an ECDSA private key")
    return key


def ephemeral_consortium(root: str | Path, n: int) -> list[Path]:
    """A throwaway CA and n party folders under `root`, each holding only its own key."""
    ca = new_authority("mpc-credit session CA")
    folders = []
    for pid in range(n):
        key, cert = issue(ca, pid)
        folders.append(write_party_tls(Path(root) / f"party{pid}", pid, ca.cert, key, cert))
    return folders
