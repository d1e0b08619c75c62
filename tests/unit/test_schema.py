"""exporter.schema: the settings validation that replaced pydantic (see bench/README.md for why)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from exporter.config import PostgresTarget, RedisTarget
from exporter.schema import (
    Before,
    Field,
    Model,
    ValidationError,
    field_validator,
    location,
    model_validator,
)


def _twice(value: object) -> object:
    if isinstance(value, str) and value.endswith("x2"):
        return float(value.removesuffix("x2")) * 2
    return value


Doubled = Annotated[float, Before(_twice), Field(gt=0, le=100)]


class Split(Model):
    separator: str = ":"
    depth: int = Field(2, ge=1, le=8)


class SampleModel(Model):
    name: str
    port: int | None = Field(None, ge=1, le=65535)
    ratio: float = 0.5
    on: bool = False
    path: Path | None = None
    mode: Literal["fast", "slow"] = "fast"
    scale: Doubled = 1.0
    tags: list[str] = []
    paths: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    extra: dict[str, Any] = {}
    shape: list[str] | Split | None = None
    which: Literal["all"] | list[str] = "all"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if " " in value:
            raise ValueError("must not contain spaces")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _port_needs_path(self) -> SampleModel:
        if self.port == 1 and self.path is None:
            raise ValueError("port 1 needs a path")
        return self


def problems(data: object) -> list[str]:
    with pytest.raises(ValidationError) as err:
        SampleModel.model_validate(data)
    return err.value.problems()


def test_lenient_input_is_converted_to_the_declared_types() -> None:
    sample = SampleModel.model_validate(
        {
            "name": "a",
            "port": "5432",
            "ratio": "0.25",
            "on": "yes",
            "path": "/tmp/x",
            "mode": "SLOW",
            "scale": "3x2",
            "tags": ["a", "b"],
            "paths": ["/p"],
            "labels": {"k": "v"},
            "shape": {"depth": 3},
            "which": ["db1"],
        }
    )
    assert sample.port == 5432
    assert sample.ratio == 0.25
    assert sample.on is True
    assert sample.path == Path("/tmp/x")
    assert sample.mode == "slow"
    assert sample.scale == 6.0
    assert sample.paths == ("/p",)
    assert sample.shape == Split(separator=":", depth=3)
    assert sample.which == ["db1"]
    assert sample.model_fields_set == {
        "name",
        "port",
        "ratio",
        "on",
        "path",
        "mode",
        "scale",
        "tags",
        "paths",
        "labels",
        "shape",
        "which",
    }
    assert SampleModel(name="b").shape is None
    assert SampleModel(name="b", shape=["cache:"]).shape == ["cache:"]


def test_every_problem_is_reported_with_its_path_and_never_the_input() -> None:
    found = problems(
        {
            "port": 70000,
            "ratio": "s3cret-value",
            "on": "perhaps",
            "mode": "medium",
            "scale": 0,
            "tags": ["ok", 5],
            "labels": {"k": 1, 2: "v"},
            "shape": 7,
            "which": "some",
            "typo": 1,
        }
    )
    assert found == [
        "name: is required",
        "port: must be at most 65535",
        "ratio: must be a finite number",
        "on: must be true or false",
        'mode: must be one of "fast", "slow"',
        "scale: must be greater than 0",
        "tags[1]: must be a string",
        "labels.k: must be a string",
        "labels[2]: keys must be strings",
        "shape: must be a list or a mapping of settings",
        'which: must be "all" or a list',
        "typo: unknown key (check its spelling and place)",
    ]
    assert not any("s3cret" in p for p in found)


def test_validators_and_nested_paths() -> None:
    assert problems({"name": "a b"}) == ["name: must not contain spaces"]
    assert problems({"name": "a", "port": 1}) == ["(top level): port 1 needs a path"]
    assert problems({"name": "a", "shape": {"depth": 9, "sep": "/"}}) == [
        "shape.depth: must be at most 8",
        "shape.sep: unknown key (check its spelling and place)",
    ]
    # the whole-model check runs only once every field is valid
    assert problems({"name": "a b", "port": 1}) == ["name: must not contain spaces"]
    assert problems([1, 2]) == ["(top level): must be a mapping of settings"]
    assert problems({"name": 5, True: 1}) == [
        "name: must be a string",
        "True: unknown key (check its spelling and place)",
    ]
    assert location(("a\nb", "c", 0)) == "'a\\nb'.c[0]"


def test_nan_infinity_bools_and_fractions_are_not_numbers() -> None:
    assert problems({"name": "a", "ratio": float("nan")}) == ["ratio: must be a finite number"]
    assert problems({"name": "a", "ratio": True}) == ["ratio: must be a finite number"]
    assert problems({"name": "a", "port": 80.5}) == ["port: must be a whole number"]
    assert problems({"name": "a", "port": False}) == ["port: must be a whole number"]
    assert SampleModel.model_validate({"name": "a", "port": 80.0}).port == 80


def test_instances_are_frozen_values_that_copy_compare_and_dump() -> None:
    sample = SampleModel(name="a", tags=["x"])
    with pytest.raises(AttributeError):
        sample.name = "b"  # type: ignore[misc]
    copy = sample.model_copy(update={"port": 5})
    assert copy.port == 5 and sample.port is None
    assert "port" in copy.model_fields_set and "port" not in sample.model_fields_set
    assert copy != sample and SampleModel(name="a", tags=["x"]) == sample
    assert hash(SampleModel(name="a", tags=["x"])) == hash(sample)
    assert sample.model_dump()["shape"] is None
    assert SampleModel(name="a", shape={"depth": 1}).model_dump()["shape"] == {
        "separator": ":",
        "depth": 1,
    }
    # defaults are not shared between instances
    assert SampleModel(name="a").tags is not SampleModel(name="b").tags


def test_a_target_printed_in_a_log_hides_its_password() -> None:
    pg = PostgresTarget(name="db", dsn="postgresql://app:hunter2@db:5432/app")
    redis = RedisTarget(name="cache", url="redis://:hunter2@cache:6379/0?password=hunter2")
    for text in (repr(pg), str(pg), repr(redis), f"{[redis]}"):
        assert "hunter2" not in text
        assert "***" in text


def test_the_daemon_does_not_load_pydantic() -> None:
    """pydantic cost ~9 MB of RSS (bench/README.md); the daemon's imports must not bring it back."""
    code = (
        "import sys, exporter.cli, exporter.daemon, exporter.webconfig, exporter.summary.board;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
