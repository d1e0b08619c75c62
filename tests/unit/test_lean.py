"""``exporter.lean``: aiohttp loads without the client defaults the daemon never uses.

Each check runs in a fresh interpreter (the test process has long imported aiohttp itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.processes import ROOT

REPORT = """
import json, os, ssl, sys
{before}
import aiohttp.connector, aiohttp.web_fileresponse
print(json.dumps({{
    "aiohttp_cas": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "later_cas": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "ca_file": os.environ.get("SSL_CERT_FILE"),
    "frozenlist_compiled": "frozenlist._frozenlist" in sys.modules,
    "mime_inited": __import__("mimetypes").inited,
    "aiohttp_html": aiohttp.web_fileresponse.CONTENT_TYPES.guess_type("a.html")[0],
    "mime_later": len(__import__("mimetypes").MimeTypes().types_map[True])
    + len(__import__("mimetypes").types_map),
}}))
"""


def _report(before: str, env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE",)}
    clean.pop("FROZENLIST_NO_EXTENSIONS", None)
    out = subprocess.run(
        [sys.executable, "-c", REPORT.format(before=before)],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_plain_import_loads_the_ca_store_and_the_compiled_frozenlist() -> None:
    # what the daemon avoids; if aiohttp stops doing this, lean.py has nothing left to do
    plain = _report("")
    assert isinstance(plain["aiohttp_cas"], int) and plain["aiohttp_cas"] > 0
    assert plain["frozenlist_compiled"] is True


def test_import_web_skips_them_and_leaves_every_later_context_whole() -> None:
    plain = _report("")
    lean = _report("from exporter import lean; lean.import_web()")
    assert lean["aiohttp_cas"] == 0
    assert lean["frozenlist_compiled"] is False
    # asyncpg's and redis-py's TLS contexts, made later, still verify against the system store
    assert lean["later_cas"] == plain["later_cas"] > 0
    assert lean["ca_file"] is None
    # aiohttp's table was built without the system's MIME files, and mimetypes reads them for
    # whoever asks after (a plain interpreter has them read by aiohttp's import)
    assert plain["mime_inited"] is True
    assert lean["mime_inited"] is False
    assert lean["aiohttp_html"] == plain["aiohttp_html"] == "text/html"
    assert lean["mime_later"] == plain["mime_later"]


def test_a_ca_file_of_the_user_is_restored() -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    lean = _report("from exporter import lean; lean.import_web()", {"SSL_CERT_FILE": bundle})
    assert lean["ca_file"] == bundle
    assert lean["aiohttp_cas"] == 0
    assert isinstance(lean["later_cas"], int) and lean["later_cas"] > 0


def test_the_command_line_imports_no_aiohttp_before_it_calls_lean() -> None:
    # cli.main() calls lean.import_web() first; importing the module must not load aiohttp
    out = subprocess.run(
        [sys.executable, "-c", "import sys, exporter.cli; print('aiohttp' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "False"
