"""A bug of ours while reading the config is one line and a non-zero exit, never a traceback
or a quote of the input; on SIGHUP it is a failed reload, and the daemon keeps running."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import pytest

from exporter import cli
from exporter import config as config_module
from exporter.daemon import Daemon


def _broken_load(*args: object, **kwargs: object) -> NoReturn:
    raise OverflowError("int too large: Sekr3tValue")


def test_cli_reports_an_unexpected_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(config_module, "load", _broken_load)
    assert cli.main(["--check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "OverflowError" in err and "Sekr3tValue" not in err and "Traceback" not in err


async def test_reload_survives_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    path = tmp_path / "c.yml"
    path.write_text("targets: {}\n")
    daemon = Daemon(config_module.load(path, environ={}), path, {})
    monkeypatch.setattr(config_module, "load", _broken_load)
    with caplog.at_level(logging.ERROR):
        assert await daemon.reload() is False
    assert daemon.reload_failures == 1
    assert "config reload failed unexpectedly" in caplog.text
    assert "Sekr3tValue" not in caplog.text
    monkeypatch.undo()
    assert await daemon.reload() is True
