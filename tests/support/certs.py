"""Throw-away X.509 material for the TLS tests: certificate authorities from trustme, as PEM files.

Every file lands in one directory as ``<name>.crt`` and ``<name>.key``, so a test can point a
config at a CA or leaf by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

#: What a server certificate is valid for: the suite only ever listens on 127.0.0.1.
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Issued:
    """A certificate and its unencrypted key, as PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A certificate authority called ``name`` that signs leaves into ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self._ca = trustme.CA(organization_unit_name=name)
        self.files = self._write(name, self._ca.cert_pem, self._ca.private_key_pem)

    def issue(self, name: str, *, server: bool = True) -> Issued:
        """A leaf called ``name``: a server certificate for 127.0.0.1, or a client's."""
        # a client's certificate names it by an e-mail address: cryptography (51 here) refuses a
        # certificate without any subjectAltName, which is what trustme makes of no identity
        identities = LOCAL_HOSTS if server else (f"{name}@clients.invalid",)
        leaf = self._ca.issue_cert(*identities, common_name=name)
        return self._write(name, leaf.cert_chain_pems[0], leaf.private_key_pem)

    def _write(self, name: str, cert: trustme.Blob, key: trustme.Blob) -> Issued:
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        cert.write_to_path(str(issued.cert))
        key.write_to_path(str(issued.key))
        return issued


def web_pki(directory: Path) -> dict[str, Issued]:
    """Everything the web TLS tests use: two server CAs (one for a rotation), client CAs, leaves."""
    server_ca = CertificateAuthority(directory, "server-ca")
    new_ca = CertificateAuthority(directory, "server-ca-2")
    client_ca = CertificateAuthority(directory, "client-ca")
    rogue_ca = CertificateAuthority(directory, "rogue-ca")
    return {
        "ca": server_ca.files,
        "server": server_ca.issue("server"),
        "other": server_ca.issue("other"),
        "new_ca": new_ca.files,
        "rotated": new_ca.issue("rotated"),
        "client_ca": client_ca.files,
        "client": client_ca.issue("scraper", server=False),
        "rogue": rogue_ca.issue("rogue", server=False),
    }


def encrypt_key(key: Path, out: Path, passphrase: str) -> Path:
    """``key`` re-written with a passphrase (the daemon must refuse it, never prompt)."""
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    out.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    return out
