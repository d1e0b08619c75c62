"""exporter.schema keeps what its names promise: frozen models are frozen all the way down, and
a union takes the branch of the value's own type before converting it to another branch."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Literal

import pytest

from exporter.config import Config
from exporter.schema import FrozenDict, FrozenList, Model, ValidationError, field_validator
from exporter.webconfig import WebConfig


class Tagged(Model):
    tags: list[str] = []
    labels: dict[str, str] = {}
    extra: dict[str, Any] = {}


class Cleaned(Model):
    names: list[str] = []

    @field_validator("names")
    @classmethod
    def _strip(cls, value: list[str]) -> list[str]:
        return [name.strip() for name in value]  # a plain list, handed back


class Either(Model):
    value: int | str = 0
    mode: bool | Literal["off", "auto"] = True
    ids: list[int] | list[str] = []


def test_list_and_mapping_fields_refuse_changes() -> None:
    tagged = Tagged.model_validate({"tags": ["a"], "labels": {"k": "v"}, "extra": {"n": [1]}})
    with pytest.raises(TypeError, match="read-only"):
        tagged.tags.append("b")
    with pytest.raises(TypeError, match="read-only"):
        tagged.tags[0] = "b"
    with pytest.raises(TypeError, match="read-only"):
        tagged.labels["k"] = "w"
    with pytest.raises(TypeError, match="read-only"):
        tagged.labels.update(k="w")
    with pytest.raises(TypeError, match="read-only"):
        tagged.extra["n"].append(2)  # raw data under Any is frozen too
    assert tagged.tags == ["a"] and tagged.labels == {"k": "v"} and tagged.extra == {"n": [1]}


def test_defaults_and_copies_are_frozen_and_equal_instances_keep_one_hash() -> None:
    plain = Tagged()
    with pytest.raises(TypeError):
        plain.tags.append("x")
    updated = plain.model_copy(update={"tags": ["y"]})
    with pytest.raises(TypeError):
        updated.tags.append("z")
    before = hash(updated)
    assert copy.deepcopy(updated) == updated and hash(copy.deepcopy(updated)) == before
    assert pickle.loads(pickle.dumps(updated.tags)) == ["y"]
    # model_dump hands back plain containers the caller may change
    dumped = updated.model_dump()
    dumped["tags"].append("w")
    assert type(dumped["tags"]) is list and updated.tags == ["y"] and hash(updated) == before


def test_a_loaded_config_is_read_only_inside() -> None:
    config = Config.model_validate({"targets": {"redis": [{"name": "c", "url": "redis://x"}]}})
    assert isinstance(config.targets.redis, FrozenList)
    assert isinstance(config.thresholds, FrozenDict)
    with pytest.raises(TypeError):
        config.targets.redis.clear()


def test_what_a_validator_hands_back_is_frozen_too() -> None:
    cleaned = Cleaned.model_validate({"names": [" a "]})
    assert cleaned.names == ["a"]
    with pytest.raises(TypeError):
        cleaned.names.append("b")
    web = WebConfig.model_validate({"http_server_config": {"headers": {"x-frame-options": "DENY"}}})
    with pytest.raises(TypeError):
        web.http_server_config.headers["X-Frame-Options"] = "SAMEORIGIN"


def test_a_union_keeps_the_value_of_its_own_type() -> None:
    assert Either.model_validate({"value": "15"}).value == "15"
    assert Either.model_validate({"value": 15}).value == 15
    assert Either.model_validate({"mode": "off"}).mode == "off"  # not bool("off") == False
    assert Either.model_validate({"mode": False}).mode is False
    assert Either.model_validate({"mode": "yes"}).mode is True  # converted: no exact branch


def test_a_union_tries_the_next_branch_when_the_first_fitting_one_fails() -> None:
    assert Either.model_validate({"ids": ["a", "b"]}).ids == ["a", "b"]
    assert Either.model_validate({"ids": [1, "2"]}).ids == [1, 2]
    with pytest.raises(ValidationError) as raised:
        Either.model_validate({"ids": [1, None]})
    # neither branch fits: the first branch's problem is the one reported
    assert raised.value.problems() == ["ids[1]: must be a whole number"]
