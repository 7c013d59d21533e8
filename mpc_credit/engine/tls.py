"""TLS for the MPC links: a party's contexts, an optional CRL, and the party a certificate names.

Every party's certificate comes from the same consortium CA with common name `MPyC party {pid}`
(consortium/pki.py), so a valid certificate alone says "some member", not "which member":
`certificate_pid` reads the party id a peer's certificate names, and the link layer
(engine/links.py) holds the peer to it. A CRL file `.config/mpyc_crl.pem` in the party's folder,
when present (written by `mpc-credit pki revoke`), is checked for every peer certificate.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mpc_credit.errors import UsageError

CRL_FILE = "mpyc_crl.pem"  # under the party folder's .config/, next to mpyc_ca.crt
_PARTY_NAME = re.compile(r"MPyC party (0|[1-9][0-9]{0,4})")


def certificate_pid(peercert: dict[str, Any] | None) -> int | None:
    """The party id in a certificate's one common name `MPyC party {pid}` (as returned by
    SSLSocket.getpeercert()), or None when it names no party."""
    if not peercert:
        return None
    names = [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
    if len(names) != 1:
        return None
    m = _PARTY_NAME.fullmatch(names[0])
    return int(m.group(1)) if m else None


def _pem_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise UsageError(f"{path}: {what} missing (run `mpc-credit pki init`)")
    return path.read_bytes()


def _check_own_certificate(crt: Path, pid: int) -> None:
    try:
        cert = x509.load_pem_x509_certificate(_pem_file(crt, "TLS certificate"))
    except ValueError:
        raise UsageError(f"{crt}: not a PEM certificate") from None
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if [n.value for n in names] != [f"MPyC party {pid}"]:
        raise UsageError(f"{crt}: the certificate does not name MPyC party {pid}")


def _check_crl(crl: Path, ca: Path) -> None:
    """The CRL must parse and be signed by the MPC CA (or every link would fail later)."""
    try:
        revocations = x509.load_pem_x509_crl(_pem_file(crl, "CRL"))
    except ValueError:
        raise UsageError(f"{crl}: not a PEM certificate revocation list") from None
    authority = x509.load_pem_x509_certificate(ca.read_bytes())
    key = authority.public_key()
    if revocations.issuer != authority.subject or not revocations.is_signature_valid(key):  # type: ignore[arg-type]
        raise UsageError(f"{crl}: the CRL is not signed by the MPC CA {ca}")


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """When and how big a file was last written, or None when there is none."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


@dataclass
class TlsContexts:
    """The party's TLS contexts for MPyC links, built once at daemon start and again when
    its CRL file changes (`refresh`, called before every session's links)."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    folder: Path | None = None
    pid: int = 0
    crl: Path | None = None  # given explicitly; else .config/mpyc_crl.pem when present
    crl_stamp: tuple[int, int] | None = None

    @classmethod
    def load(cls, folder: Path, pid: int, crl: Path | None = None) -> TlsContexts:
        """Contexts from `folder/.config`; with a CRL (`crl`, or `.config/mpyc_crl.pem` when
        present) a revoked peer certificate fails verification."""
        out = cls(*_contexts(Path(folder), pid, crl), folder=Path(folder), pid=pid, crl=crl)
        out.crl_stamp = _stamp(out.crl_file())
        return out

    def crl_file(self) -> Path | None:
        if self.crl is not None or self.folder is None:
            return self.crl
        return self.folder / ".config" / CRL_FILE

    def refresh(self) -> None:
        """Rebuild the contexts if the CRL file appeared, changed or went since they were."""
        stamp = _stamp(self.crl_file())
        if self.folder is None or stamp == self.crl_stamp:
            return
        self.server, self.client = _contexts(self.folder, self.pid, self.crl)
        self.crl_stamp = stamp


def _contexts(folder: Path, pid: int, crl: Path | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts of party `pid` from `folder/.config` (and a CRL)."""
    conf = folder / ".config"
    crt, key, ca = conf / f"party_{pid}.crt", conf / f"party_{pid}.key", conf / "mpyc_ca.crt"
    for f in (crt, key, ca):
        if not f.is_file():
            raise UsageError(f"{f}: TLS file missing (run `mpc-credit pki init`)")
    _check_own_certificate(crt, pid)
    if crl is None and (conf / CRL_FILE).exists():
        crl = conf / CRL_FILE
    if crl is not None:
        _check_crl(crl, ca)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    for ctx in (server, client):  # client: check_hostname holds the server to its pid
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(crt), str(key))
        if crl is not None:
            ctx.load_verify_locations(cafile=str(crl))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return server, client
