"""The web-config file: exporter-toolkit format parsed, every problem reported, secrets unquoted."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.webconfig import load_web_config
from tests.support.certs import Issued, encrypt_key

HASH = bcrypt.hashpw(b"s3cret-Prom", bcrypt.gensalt(4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def tls_section(cert: Path | str, key: Path | str, **settings: object) -> str:
    """A ``tls_server_config`` section with ``cert`` and ``key``, and ``settings`` after them."""
    keys = {"cert_file": cert, "key_file": key, **settings}
    return "tls_server_config:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items())


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    return info.value.problems


def test_toolkit_file_parses_with_paths_relative_to_the_file(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    for name in ("server", "client_ca"):
        for src in (pki[name].cert, pki[name].key):
            (tmp_path / src.name).write_bytes(src.read_bytes())
    path = write(
        tmp_path,
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: client-ca.crt
  min_version: TLS12
  max_version: TLS13
http_server_config:
  headers:
    strict-transport-security: max-age=31536000
basic_auth_users:
  prometheus: {HASH}
unauthenticated_paths: [/healthz]
""",
    )
    config = load_web_config(path)
    tls = config.tls_server_config
    assert tls is not None
    assert tls.cert_file == tmp_path / "server.crt"
    assert tls.client_ca_file == tmp_path / "client-ca.crt"
    assert config.basic_auth_users == {"prometheus": HASH}
    assert config.unauthenticated_paths == ("/healthz",)
    assert config.http_server_config.headers == {"Strict-Transport-Security": "max-age=31536000"}
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3


def test_empty_file_means_plain_http_and_no_auth(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.ssl_context() is None
    assert config.basic_auth_users == {}


def test_every_problem_is_reported_with_its_path_and_no_hash_is_quoted(tmp_path: Path) -> None:
    not_a_hash = "plaintext-Passw0rd-never-echo"
    path = write(
        tmp_path,
        f"""
tls_server_config:
  cert_file: /nonexistent.crt
  min_version: TLS10
basic_auth_users:
  alice: {not_a_hash}
unauthenticated_paths: [healthz]
listen: 1
""",
    )
    found = problems(path)
    text = "\n".join(found)
    assert all(p.startswith(f"{path}: ") for p in found)
    assert "tls_server_config.key_file: is required" in text
    assert "tls_server_config.min_version: must be TLS12 or TLS13" in text
    assert "basic_auth_users: the password of alice is not a bcrypt hash" in text
    assert "unauthenticated_paths: each path must be an absolute URL path" in text
    assert "listen: unknown key" in text
    assert not_a_hash not in text


@pytest.mark.parametrize("kind", ["RequestClientCert", "RequireAnyClientCert"])
def test_client_auth_types_that_skip_verification_are_refused_with_the_alternative(
    tmp_path: Path, pki: dict[str, Issued], kind: str
) -> None:
    server, ca = pki["server"], pki["client_ca"].cert
    section = tls_section(server.cert, server.key, client_auth_type=kind, client_ca_file=ca)
    path = write(tmp_path, section)
    (problem,) = problems(path)
    assert "tls_server_config.client_auth_type" in problem
    assert f"{kind} is not supported" in problem
    assert "RequireAndVerifyClientCert" in problem


def test_client_ca_and_client_auth_type_must_come_together(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    base = tls_section(pki["server"].cert, pki["server"].key)
    (alone,) = problems(write(tmp_path, base + f"  client_ca_file: {pki['client_ca'].cert}\n"))
    assert "client_ca_file is set but client_auth_type is NoClientCert" in alone
    (missing,) = problems(write(tmp_path, base + "  client_auth_type: VerifyClientCertIfGiven\n"))
    assert "VerifyClientCertIfGiven needs client_ca_file" in missing


def test_unimplemented_toolkit_keys_are_refused_by_name(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    section = tls_section(
        pki["server"].cert, pki["server"].key, client_allowed_sans="[scraper.example]"
    )
    path = write(tmp_path, section)
    (problem,) = problems(path)
    assert "client_allowed_sans not supported" in problem


def test_key_of_another_certificate_is_reported_without_key_material(
    tmp_path: Path, pki: dict[str, Issued]
) -> None:
    path = write(tmp_path, tls_section(pki["server"].cert, pki["other"].key))
    (problem,) = problems(path)
    assert "cannot use cert_file and key_file together" in problem
    assert "KEY_VALUES_MISMATCH" in problem
    assert "PRIVATE KEY" not in problem
    key_body = pki["other"].key.read_text().splitlines()[1]
    assert key_body not in problem


@pytest.mark.timeout(20)
def test_encrypted_key_is_refused_without_prompting(tmp_path: Path, pki: dict[str, Issued]) -> None:
    locked = encrypt_key(pki["server"].key, tmp_path / "locked.key", "pass-phrase-xyz")
    path = write(tmp_path, tls_section(pki["server"].cert, locked))
    (problem,) = problems(path)
    assert "the key unencrypted" in problem
    assert "pass-phrase-xyz" not in problem


def test_unreadable_files_are_named(tmp_path: Path, pki: dict[str, Issued]) -> None:
    path = write(tmp_path, tls_section(f"{tmp_path}/missing.crt", pki["server"].key))
    (problem,) = problems(path)
    assert problem == (
        f"{path}: tls_server_config.cert_file: cannot read {tmp_path}/missing.crt "
        "(No such file or directory)"
    )
    (gone,) = problems(tmp_path / "absent.yml")
    assert "cannot read the web config file (No such file or directory)" in gone


def test_bad_yaml_and_wrong_shapes_are_one_sentence(tmp_path: Path) -> None:
    (bad,) = problems(write(tmp_path, "basic_auth_users: {a: [\n"))
    assert bad.startswith(f"{tmp_path / 'web.yml'}: invalid YAML at line")
    (shape,) = problems(write(tmp_path, "- a\n- b\n"))
    assert shape.endswith("the top level must be a mapping of settings")


def test_only_security_headers_may_be_added(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "http_server_config:\n  headers: {Server: evil}\n"))
    assert "header 'Server' may not be set" in problem
