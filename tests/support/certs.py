"""Real X.509 material for TLS tests, made with the openssl CLI (a CA, then leaves it signs)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import require_binary


@dataclass(frozen=True)
class Issued:
    """A certificate and its unencrypted key, as PEM files."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> Issued:
    """A self-signed certificate authority called ``name``."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return Issued(cert, key)


def issue(
    directory: Path, name: str, ca: Issued, *, server: bool = True, san: str = "IP:127.0.0.1"
) -> Issued:
    """A leaf certificate for ``name`` signed by ``ca``: a server (``san``) or a client."""
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
    ext = directory / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    ext.write_text(
        f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
        + (f"subjectAltName={san}\n" if server else "")
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return Issued(cert, key)


def encrypt_key(key: Path, out: Path, passphrase: str) -> Path:
    """``key`` re-written with a passphrase (the daemon must refuse it, never prompt)."""
    _openssl("pkey", "-in", str(key), "-out", str(out), "-aes256", "-passout", f"pass:{passphrase}")
    return out
