"""Enrollment at an institution: its keys are made on its own machine and never leave it.

`pki request` (`request_party`, `write_request`) creates the party's folder (mode 0700)
with its three private keys, each mode 0600: the MPC TLS key (`.config/mpc.key` until
installed), the broker client key (`mqtt/client.key`) and the Ed25519 signing key
(`signing.key`); and a public `request/` folder to send to the consortium operator:
`mpc.csr` and `mqtt.csr` (certificate signing requests, proof that the party holds each
key) and `request.json` (name, MPC host and ports, Ed25519 public key, the digests of both
requests), signed with the Ed25519 key it names. Its fingerprint is read out to the
operator over another channel.

The operator's `pki sign` (mpc_credit.consortium.create) issues certificates from the
requests and writes a public bundle per party. `pki install` (`install_bundle`) checks that
the bundle certifies this party's own keys, copies its public files into the party folder,
and moves the MPC key to `.config/party_{pid}.key`, where MPyC's TLS convention expects it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mpc_credit import jsonwire
from mpc_credit.consortium import pki
from mpc_credit.consortium.config import (
    DEFAULT_MPC_BASE,
    DEFAULT_MPC_PORTS,
    check_party_name,
    check_safe,
    load_consortium,
    load_party_config,
)
from mpc_credit.consortium.signing import (
    canonical,
    load_signing_key,
    new_signing_key,
    public_b64,
    public_from_b64,
    sign,
    verify,
    write_signing_key,
)
from mpc_credit.errors import UsageError

REQUEST_FORMAT = "mpc-credit/party-request@1"
HOST = re.compile(r"[A-Za-z0-9.:-]{1,253}")  # a DNS name, IPv4 or IPv6 address
MPC_KEY = ".config/mpc.key"  # the MPC key before `install_bundle` knows the party's pid
MAX_MPC_PORTS = 1000
FIELDS = ("format", "party", "host", "mpc_port", "mpc_ports", "signing_key", "csr_sha256", "sig")


@dataclass(frozen=True)
class PartyRequest:
    """What a party sends the operator: its public request and two signing requests."""

    name: str
    host: str
    mpc_port: int
    mpc_ports: int
    signing_key: str  # base64 raw Ed25519 public key
    mpc_csr: x509.CertificateSigningRequest
    mqtt_csr: x509.CertificateSigningRequest

    def body(self, signing: Any = None) -> dict[str, Any]:
        """request.json's content, signed with `signing` (the party's Ed25519 key) if given."""
        body = {
            "format": REQUEST_FORMAT,
            "party": self.name,
            "host": self.host,
            "mpc_port": self.mpc_port,
            "mpc_ports": self.mpc_ports,
            "signing_key": self.signing_key,
            "csr_sha256": [_digest(self.mpc_csr), _digest(self.mqtt_csr)],
        }
        return sign(REQUEST_FORMAT, body, signing) if signing is not None else body

    def fingerprint(self) -> str:
        """A short digest of the whole request, to compare by phone before signing."""
        digest = hashlib.sha256(canonical(REQUEST_FORMAT, self.body())).hexdigest()[:32]
        return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def _digest(csr: x509.CertificateSigningRequest) -> str:
    return hashlib.sha256(pki.pem(csr)).hexdigest()


def check_ports(host: object, port: object, ports: object, where: str) -> tuple[str, int, int]:
    """A safe MPC host and a port range inside 1..65535; errors name `where`."""
    host = check_safe(host, f"{where}host", HOST, "a DNS name or an IP address")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError(f"{where}mpc_port: {port!r} is not a port number")
    if not isinstance(ports, int) or isinstance(ports, bool) or not 1 <= ports <= MAX_MPC_PORTS:
        raise UsageError(f"{where}mpc_ports: {ports!r} is not between 1 and {MAX_MPC_PORTS}")
    if port + ports > 65536:
        raise UsageError(f"{where}mpc_ports: ports {port}..{port + ports - 1} exceed 65535")
    return host, port, ports


# ---------------------------------------------------------------- at the institution


def request_party(
    folder: str | Path,
    name: str,
    *,
    host: str = "127.0.0.1",
    mpc_port: int = DEFAULT_MPC_BASE,
    mpc_ports: int = DEFAULT_MPC_PORTS,
    force: bool = False,
) -> PartyRequest:
    """Create party `name`'s private keys in `folder` (see the module docstring); returns
    its request. Refuses to replace existing keys unless `force`."""
    check_party_name(name, "--party")
    host, mpc_port, mpc_ports = check_ports(host, mpc_port, mpc_ports, "--")
    folder = pki.private_dir(Path(folder))
    if (folder / "signing.key").exists() and not force:
        raise UsageError(f"{folder}: holds keys already (use --force to make new ones)")
    mpc_key, mqtt_key, signing = pki.new_key(), pki.new_key(), new_signing_key()
    pki.write_private(folder / MPC_KEY, pki.key_pem(mpc_key))
    pki.write_private(folder / "mqtt" / "client.key", pki.key_pem(mqtt_key))
    write_signing_key(folder / "signing.key", signing)
    return PartyRequest(
        name,
        host,
        mpc_port,
        mpc_ports,
        public_b64(signing),
        pki.new_csr(mpc_key, name),
        pki.new_csr(mqtt_key, name),
    )


def write_request(req: PartyRequest, party_folder: Path) -> Path:
    """Write `req` as the public folder `party_folder/request`, signed with the party's
    signing key; returns that folder."""
    out = party_folder / "request"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mpc.csr").write_bytes(pki.pem(req.mpc_csr))
    (out / "mqtt.csr").write_bytes(pki.pem(req.mqtt_csr))
    signed = req.body(load_signing_key(party_folder / "signing.key"))
    (out / "request.json").write_bytes(jsonwire.encode(signed) + b"\n")
    return out


def load_request(folder: str | Path) -> PartyRequest:
    """Read and check a request folder (hostile until checked: size limits, strict JSON,
    known fields, safe names, the signature of the key it names, both CSRs' signatures and
    digests); errors name the file and the field."""
    folder = Path(folder)
    path = folder / "request.json"
    try:
        data = jsonwire.decode_object(pki.read_bounded(path, "party request"))
    except jsonwire.WireError as exc:
        raise UsageError(f"{path}: not a party request: {exc}") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown or data.get("format") != REQUEST_FORMAT:
        why = f"unknown field {unknown[0]!r}" if unknown else f"format is not {REQUEST_FORMAT}"
        raise UsageError(f"{path}: not a party request: {why}")
    name = check_party_name(data.get("party"), f"{path}: party")
    host, port, ports = check_ports(
        data.get("host"), data.get("mpc_port"), data.get("mpc_ports"), f"{path}: "
    )
    try:
        public = public_from_b64(str(data.get("signing_key")))
    except UsageError:
        raise UsageError(f"{path}: signing_key: not an Ed25519 public key") from None
    if not verify(REQUEST_FORMAT, data, public):
        raise UsageError(f"{path}: the signature does not match the signing key it names")
    req = PartyRequest(
        name,
        host,
        port,
        ports,
        str(data["signing_key"]),
        pki.load_csr(folder / "mpc.csr"),
        pki.load_csr(folder / "mqtt.csr"),
    )
    if data.get("csr_sha256") != req.body()["csr_sha256"]:
        raise UsageError(f"{path}: csr_sha256 does not match mpc.csr and mqtt.csr")
    return req


# ---------------------------------------------------------------- installing the bundle


def _own_mpc_key(folder: Path, cert: x509.Certificate) -> Path:
    """The party's MPC key file that `cert` certifies (before or after installation)."""
    conf = folder / ".config"
    for path in [folder / MPC_KEY, *sorted(conf.glob("party_*.key"))]:
        if path.exists() and pki.same_key(pki.load_key(path).public_key(), cert.public_key()):
            return path
    raise UsageError(f"{folder}: holds no MPC key that {pki.subject_cn(cert)!r} certifies")


def _check_cert(path: Path, ca_path: Path, name: str) -> x509.Certificate:
    """The certificate at `path`, issued by the CA at `ca_path` to `name`."""
    cert = pki.load_cert(path)
    if pki.subject_cn(cert) != name:
        raise UsageError(f"{path}: issued to {pki.subject_cn(cert)!r}, expected {name!r}")
    if not pki.issued_by(cert, pki.load_cert(ca_path)):
        raise UsageError(f"{path}: not issued by {ca_path}")
    return cert


def install_bundle(bundle: str | Path, folder: str | Path) -> Path:
    """Install the operator's bundle for this party into `folder` (which holds the keys
    `request_party` made); returns the party.toml to run the daemon with."""
    bundle, folder = Path(bundle), Path(folder)
    cfg = load_party_config(bundle / "party.toml")
    in_place = bundle.resolve() == folder.resolve()
    if not in_place and cfg.consortium_file != (bundle / "consortium.json").resolve():
        raise UsageError(
            f"{bundle / 'party.toml'}: consortium must be the bundle's consortium.json"
        )
    cons = load_consortium(cfg.consortium_file)
    if cfg.party not in cons.names:
        raise UsageError(f"{bundle / 'party.toml'}: party {cfg.party!r} is not in the consortium")
    me = cons.party(cfg.party)
    if public_b64(load_signing_key(folder / "signing.key")) != me.signing_key:
        raise UsageError(
            f"{cfg.consortium_file}: lists another signing key for {me.name!r} than "
            f"{folder / 'signing.key'}: this bundle is not for this party"
        )
    mpc_crt = bundle / ".config" / f"party_{me.pid}.crt"
    mpc = _check_cert(mpc_crt, bundle / ".config" / "mpyc_ca.crt", pki.party_name(me.pid))
    mqtt = _check_cert(bundle / "mqtt" / "client.crt", bundle / "mqtt" / "ca.crt", me.name)
    if not pki.same_key(
        pki.load_key(folder / "mqtt" / "client.key").public_key(), mqtt.public_key()
    ):
        raise UsageError(f"{folder}: holds no broker client key that {me.name!r} certifies")
    key = _own_mpc_key(folder, mpc)
    if not in_place:
        _copy_public(bundle, folder, cfg, me.pid)
    key.rename(folder / ".config" / f"party_{me.pid}.key")
    for stale in (folder / ".config").glob("party_*.*"):
        if stale.stem != f"party_{me.pid}":
            stale.unlink()
    return folder / "party.toml"


def _copy_public(bundle: Path, folder: Path, cfg: Any, pid: int) -> None:
    """Copy the bundle's public files: certificates, CRL, consortium file, model files and
    (unless the party already has one) party.toml. Never a file holding a private key."""
    names = [".config/mpyc_ca.crt", f".config/party_{pid}.crt", ".config/mpyc_crl.pem"]
    names += ["mqtt/ca.crt", "mqtt/client.crt", "consortium.json"]
    root = bundle.resolve()
    for modes in cfg.models.values():
        names += [str(p.relative_to(root)) for p in modes.values() if p.is_relative_to(root)]
    if not (folder / "party.toml").exists():
        names.append("party.toml")
    for rel in dict.fromkeys(names):
        src = bundle / rel
        if src.is_symlink():
            raise UsageError(f"{src}: is a symbolic link; a bundle holds plain files")
        if not src.is_file():
            continue
        if b"PRIVATE KEY" in src.read_bytes():
            raise UsageError(f"{src}: holds a private key; a bundle never does")
        pki.private_dir((folder / rel).parent)
        shutil.copyfile(src, folder / rel)
