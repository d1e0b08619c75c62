"""What the daemon sets up before its HTTP library loads, to stay small.

``perf-exporter`` calls :func:`import_web` before anything imports aiohttp. Three costs of
importing aiohttp buy the daemon nothing, because it serves HTTP and never fetches:

* ``aiohttp.connector`` builds its two default *client* TLS contexts at import time, and the
  verifying one loads the whole system CA store into OpenSSL (about 2 MB of a 56 MB process).
  While aiohttp is imported, ``SSL_CERT_FILE`` points at an empty file, so those two contexts
  stay empty; the variable is restored right after, so every context made later (asyncpg's and
  redis-py's TLS to your databases, with ``sslmode=verify-full`` and the like) loads the store as
  usual. The daemon never uses aiohttp's client, whose requests would not verify.
* ``aiohttp.web_fileresponse`` builds a MIME table at import, which makes :mod:`mimetypes` read
  the system's MIME files into its global table (0.5 MB). The daemon serves no files: while
  aiohttp is imported the list of files is empty, so that table holds Python's built-in types;
  afterwards :mod:`mimetypes` is set back to not initialised, so whoever asks it later gets the
  system's files read as usual.
* frozenlist, used by aiohttp only for its start-up and shutdown hook lists, loads a compiled
  extension of about 1 MB; ``FROZENLIST_NO_EXTENSIONS`` (its own switch) selects the pure-Python
  class, which behaves the same. A value already set in the environment is respected.

bench/README.md ("Where the memory goes") has the measurements.
"""

from __future__ import annotations

import mimetypes
import os
import sys

#: The environment variable naming the CA file OpenSSL loads as a context's default store.
_CA_FILE = "SSL_CERT_FILE"


def import_web() -> None:
    """Import ``aiohttp.web`` without the memory it would spend on client-side defaults."""
    if "aiohttp" in sys.modules:  # already loaded (tests, an embedding program): nothing to save
        return
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")
    saved = os.environ.get(_CA_FILE)
    os.environ[_CA_FILE] = os.devnull
    mime_files, mime_ready = mimetypes.knownfiles, mimetypes.inited
    mimetypes.knownfiles = []
    try:
        import aiohttp.web  # noqa: F401 - imported for its side effect on sys.modules
    finally:
        if saved is None:
            del os.environ[_CA_FILE]
        else:
            os.environ[_CA_FILE] = saved
        mimetypes.knownfiles = mime_files
        if not mime_ready:
            mimetypes.inited = False  # the next mimetypes user reads the system's files
