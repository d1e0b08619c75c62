"""Typed settings objects validated from plain YAML data, with every problem reported at once.

This is the small part of a validation library the configuration needs, written here because
the library we started with (pydantic) cost about 9 MB of resident memory in a daemon whose
whole budget is the RSS of three Go exporters (see bench/README.md). A settings class declares
its fields with type hints and defaults::

    class Redis(Model):
        url: str
        scan_count: int = Field(1000, ge=10, le=1000)

        @field_validator("url")
        @classmethod
        def _url(cls, value: str) -> str: ...

``Redis.model_validate(data)`` returns a frozen instance (its lists and mappings are read-only
too, so an equal instance stays equal and its hash stays put) or raises :class:`ValidationError`
whose ``errors()`` are ``(location, message)`` pairs such as ``(("targets", "redis", 0,
"scan_count"), "must be at least 10")``. Messages are our own sentences and never quote the
input, so a password in the wrong place does not end up in an error.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``Any``, ``Literal``,
unions (``X | None``, and unions of different shapes such as ``list[str] | Split``; a value
that is already of one branch's exact type takes that branch, otherwise the first branch that
validates it wins),
``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, nested models and ``Annotated[X, Before(fn),
Field(...)]``. Input is read the lenient way a config file and the environment need: ``"15"`` is
an int, ``"yes"`` a bool; a string field takes only strings.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

Loc = tuple[object, ...]
M = TypeVar("M", bound="Model")

_MISSING: Any = object()
_FAIL: Any = object()
_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


class ValidationError(ValueError):
    """The input does not fit; ``errors()`` lists every problem with its location."""

    def __init__(self, errors: list[tuple[Loc, str]]) -> None:
        self._errors = errors
        super().__init__("; ".join(self.problems()))

    def errors(self) -> list[tuple[Loc, str]]:
        return list(self._errors)

    def problems(self) -> list[str]:
        """One line per problem, path first (``targets.redis[0].port: must be at most 65535``)."""
        seen: dict[str, None] = {}
        for loc, message in self._errors:
            seen[f"{location(loc)}: {message}"] = None
        return list(seen)


def location(loc: Loc) -> str:
    """``("targets", "redis", 0, "port")`` as ``targets.redis[0].port``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isprintable():
            out += ("." if out else "") + part
        else:
            # a key from the file may hold anything: newlines must not forge extra log lines
            out += ("." if out else "") + repr(part)
    return out or "(top level)"


class FrozenList(list[Any]):
    """A list that refuses changes: the list fields of a frozen model."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("settings are read-only: copy the list to change it")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> Any:
        return (FrozenList, (list(self),))


class FrozenDict(dict[Any, Any]):
    """A mapping that refuses changes: the mapping fields of a frozen model."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("settings are read-only: copy the mapping to change it")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


def _freeze(value: Any) -> Any:
    """Lists and mappings (also inside ``Any`` fields and defaults) as read-only containers."""
    if isinstance(value, FrozenList | FrozenDict):
        return value
    if isinstance(value, list):
        return FrozenList(_freeze(v) for v in value)
    if isinstance(value, dict):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    return value


class FieldInfo:
    """A field's default and numeric bounds (made by :func:`Field`)."""

    __slots__ = ("default", "factory", "ge", "gt", "le")

    def __init__(
        self,
        default: Any,
        factory: Callable[[], Any] | None,
        ge: float | None,
        gt: float | None,
        le: float | None,
    ) -> None:
        self.default = default
        self.factory = factory
        self.ge = ge
        self.gt = gt
        self.le = le

    def check(self, value: Any) -> str | None:
        """The problem with ``value``'s size, or None."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if self.gt is not None and not value > self.gt:
            return f"must be greater than {_number(self.gt)}"
        if self.ge is not None and not value >= self.ge:
            return f"must be at least {_number(self.ge)}"
        if self.le is not None and not value <= self.le:
            return f"must be at most {_number(self.le)}"
        return None


def Field(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A field's default and bounds: ``port: int | None = Field(None, ge=1, le=65535)``."""
    return FieldInfo(default, default_factory, ge, gt, le)


class Before:
    """``Annotated`` metadata: a function that turns the raw input into the field's type."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


def field_validator(
    *names: str, mode: Literal["before", "after"] = "after"
) -> Callable[[Any], Any]:
    """Mark a classmethod ``(cls, value) -> value`` that checks the named fields; it raises
    ``ValueError`` with a sentence (after the type is checked, or before with ``mode='before'``)."""

    def mark(method: Any) -> Any:
        method.__schema_fields__ = (names, mode)
        return method

    return mark


def model_validator(*, mode: Literal["before", "after"]) -> Callable[[Any], Any]:
    """Mark a check of the whole model: ``mode='before'`` is a classmethod ``(cls, data) ->
    data`` on the raw mapping, ``mode='after'`` a method ``(self) -> self`` run only when every
    field is valid. Either raises ``ValueError`` with a sentence."""

    def mark(method: Any) -> Any:
        method.__schema_model__ = mode
        return method

    return mark


class _Spec:
    """What validating one model class needs, worked out once from its type hints."""

    def __init__(self, cls: type[Model]) -> None:
        hints = typing.get_type_hints(cls, include_extras=True)
        self.fields: dict[str, tuple[Any, FieldInfo]] = {}
        for name, hint in hints.items():
            if name.startswith("_") or name == "model_fields_set":
                continue
            if typing.get_origin(hint) is ClassVar:
                continue
            declared = getattr(cls, name, _MISSING)
            info = declared if isinstance(declared, FieldInfo) else FieldInfo(declared, *[None] * 4)
            self.fields[name] = (hint, info)
        self.before: dict[str, list[str]] = {}
        self.after: dict[str, list[str]] = {}
        self.model_before: list[str] = []
        self.model_after: list[str] = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                marked = _mark(value, "__schema_fields__")
                if marked is not None:
                    names, mode = marked
                    table = self.before if mode == "before" else self.after
                    for field in names:
                        if field not in self.fields:
                            raise TypeError(f"{cls.__name__}.{attr} checks unknown field {field}")
                        table.setdefault(field, []).append(attr)
                kind = _mark(value, "__schema_model__")
                if kind == "before":
                    self.model_before.append(attr)
                elif kind == "after":
                    self.model_after.append(attr)


def _mark(value: Any, name: str) -> Any:
    """What a validator decorator noted on ``value``, above or below ``@classmethod``."""
    found = getattr(value, name, None)
    if found is None and isinstance(value, classmethod):
        found = getattr(value.__func__, name, None)
    return found


class Model:
    """A frozen settings object; unknown keys are errors, so a typo never falls back silently."""

    __schema__: ClassVar[_Spec | None] = None
    model_fields_set: frozenset[str]

    def __init__(self, **data: Any) -> None:
        errors: list[tuple[Loc, str]] = []
        self._fill(data, (), errors)
        if errors:
            raise ValidationError(errors)

    @classmethod
    def _spec(cls) -> _Spec:
        spec = cls.__dict__.get("__schema__")
        if spec is None:
            spec = _Spec(cls)
            cls.__schema__ = spec
        return spec

    @classmethod
    def model_validate(cls: type[M], data: object) -> M:
        """A validated instance from a mapping; :class:`ValidationError` lists every problem."""
        errors: list[tuple[Loc, str]] = []
        result = _validate(cls, data, (), errors)
        if errors:
            raise ValidationError(errors)
        return typing.cast(M, result)

    def _fill(self, data: Mapping[Any, Any], loc: Loc, errors: list[tuple[Loc, str]]) -> bool:
        cls = type(self)
        spec = cls._spec()
        before = len(errors)
        data = _apply([getattr(cls, name) for name in spec.model_before], data, loc, errors)
        if data is _FAIL:
            return False
        given = set()
        for name, (hint, info) in spec.fields.items():
            if name in data:
                given.add(name)
                value = _checked(cls, spec, name, hint, info, data[name], (*loc, name), errors)
            elif info.factory is not None:
                value = _freeze(info.factory())
            elif info.default is not _MISSING:
                # read-only, so one default list or mapping can serve every instance
                value = _freeze(info.default)
            else:
                errors.append(((*loc, name), "is required"))
                continue
            object.__setattr__(self, name, value)
        object.__setattr__(self, "model_fields_set", frozenset(given))
        for key in data:
            if key not in spec.fields:
                errors.append(((*loc, key), "unknown key (check its spelling and place)"))
        if len(errors) > before:
            return False
        for name in spec.model_after:
            try:
                getattr(self, name)()
            except ValueError as exc:
                errors.append((loc, str(exc)))
                return False
        return True

    def model_copy(self: M, *, update: Mapping[str, Any] | None = None) -> M:
        """A copy with ``update`` applied as given (not validated again)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for key, value in (update or {}).items():
            object.__setattr__(new, key, _freeze(value))
        object.__setattr__(new, "model_fields_set", self.model_fields_set | set(update or {}))
        return new

    def model_dump(self) -> dict[str, Any]:
        """The fields as plain data (nested models as dicts)."""
        return {name: _dump(getattr(self, name)) for name in type(self)._spec().fields}

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} settings are read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash((type(self), _frozen(self.model_dump())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in type(self)._spec().fields)
        return f"{type(self).__name__}({fields})"


def _checked(
    cls: type[Model],
    spec: _Spec,
    name: str,
    hint: Any,
    info: FieldInfo,
    value: Any,
    loc: Loc,
    errors: list[tuple[Loc, str]],
) -> Any:
    """One field: before-validators, the type, the bounds, after-validators."""
    value = _apply([getattr(cls, m) for m in spec.before.get(name, ())], value, loc, errors)
    if value is not _FAIL:
        value = _typed(hint, [info], value, loc, errors)
    if value is not _FAIL:
        value = _apply([getattr(cls, m) for m in spec.after.get(name, ())], value, loc, errors)
    # a validator may hand back a fresh plain list or dict: the model keeps it read-only
    return value if value is _FAIL else _freeze(value)


def _apply(
    funcs: list[Callable[[Any], Any]], value: Any, loc: Loc, errors: list[tuple[Loc, str]]
) -> Any:
    """``value`` through each of ``funcs`` in turn; the ValueError of one is the problem."""
    try:
        for func in funcs:
            value = func(value)
    except ValueError as exc:
        errors.append((loc, str(exc)))
        return _FAIL
    return value


def _typed(
    tp: Any, bounds: list[FieldInfo], value: Any, loc: Loc, errors: list[tuple[Loc, str]]
) -> Any:
    """``value`` converted to ``tp``, then held to each of ``bounds``."""
    value = _validate(tp, value, loc, errors)
    if value is _FAIL:
        return _FAIL
    for info in bounds:
        problem = info.check(value)
        if problem:
            errors.append((loc, problem))
            return _FAIL
    return value


def _validate(tp: Any, value: Any, loc: Loc, errors: list[tuple[Loc, str]]) -> Any:
    """``value`` converted to ``tp``; on a problem, append it to ``errors`` and return _FAIL."""
    if tp is Any:
        return _freeze(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        base, *meta = args
        value = _apply([m.func for m in meta if isinstance(m, Before)], value, loc, errors)
        if value is _FAIL:
            return _FAIL
        return _typed(base, [m for m in meta if isinstance(m, FieldInfo)], value, loc, errors)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _validate(options[0], value, loc, errors)
        # the branch of the value's own type first ("15" stays a string in int | str), then
        # every branch of its shape in order, until one validates it
        exact = [a for a in options if _exact(a, value)]
        fitting = exact + [a for a in options if a not in exact and _fits(a, value)]
        if not fitting:
            errors.append((loc, "must be " + " or ".join(_describe(a) for a in options)))
            return _FAIL
        first_problems: list[tuple[Loc, str]] | None = None
        for branch in fitting:
            problems: list[tuple[Loc, str]] = []
            result = _validate(branch, value, loc, problems)
            if not problems:
                return result
            first_problems = first_problems if first_problems is not None else problems
        errors.extend(first_problems or [])
        return _FAIL
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        errors.append((loc, "must be " + _describe(tp)))
        return _FAIL
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            errors.append((loc, "must be a list"))
            return _FAIL
        item_type = args[0] if args else Any
        items = [_validate(item_type, v, (*loc, i), errors) for i, v in enumerate(value)]
        if any(item is _FAIL for item in items):
            return _FAIL
        return tuple(items) if origin is tuple else FrozenList(items)
    if origin is dict:
        if not isinstance(value, dict):
            errors.append((loc, "must be a mapping"))
            return _FAIL
        value_type = args[1] if args else Any
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(((*loc, key), "keys must be strings"))
                continue
            out[key] = _validate(value_type, item, (*loc, key), errors)
        if any(item is _FAIL for item in out.values()) or len(out) < len(value):
            return _FAIL
        return FrozenDict(out)
    if isinstance(tp, type) and issubclass(tp, Model):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            errors.append((loc, "must be a mapping of settings"))
            return _FAIL
        instance = object.__new__(tp)
        return instance if instance._fill(value, loc, errors) else _FAIL
    converted = _scalar(tp, value)
    if converted is _FAIL:
        errors.append((loc, "must be " + _describe(tp)))
    return converted


def _scalar(tp: Any, value: Any) -> Any:
    if tp is str:
        return value if isinstance(value, str) else _FAIL
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return _FAIL
    if tp is int:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return _FAIL
        return _FAIL
    if tp is float:
        if isinstance(value, bool):
            return _FAIL
        number: float
        try:
            if isinstance(value, int | float):
                number = float(value)
            elif isinstance(value, str):
                number = float(value.strip())
            else:
                return _FAIL
        except (ValueError, OverflowError):
            return _FAIL
        return number if math.isfinite(number) else _FAIL
    if tp is Path:
        if isinstance(value, Path):
            return value
        return Path(value) if isinstance(value, str) and value and "\0" not in value else _FAIL
    if tp is type(None):
        return None if value is None else _FAIL
    raise TypeError(f"settings field type {tp!r} is not supported")


def _exact(tp: Any, value: Any) -> bool:
    """Whether ``value`` already is of ``tp``'s type, with no conversion (``"15"`` is no int)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _exact(typing.get_args(tp)[0], value)
    if origin is Literal:
        return isinstance(value, str) and value in typing.get_args(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp in (int, float):
        return isinstance(value, tp) and not isinstance(value, bool)
    if tp in (str, Path):
        return isinstance(value, tp)
    return False  # containers and models: their shape decides (_fits)


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``tp`` (which branch of a union to validate with)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type) and issubclass(tp, Model):
        return isinstance(value, dict | tp)
    if origin is typing.Annotated:
        return _fits(typing.get_args(tp)[0], value)
    return _scalar(tp, value) is not _FAIL


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        options = [f'"{a}"' for a in typing.get_args(tp)]
        return options[0] if len(options) == 1 else "one of " + ", ".join(options)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, Model)):
        return "a mapping of settings"
    if origin is typing.Annotated:
        return _describe(typing.get_args(tp)[0])
    names = {
        str: "a string",
        bool: "true or false",
        int: "a whole number",
        float: "a finite number",
        Path: "a file path",
        type(None): "empty",
    }
    return names.get(tp, "valid")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _dump(value: Any) -> Any:
    if isinstance(value, Model):
        return value.model_dump()
    if isinstance(value, tuple):
        return tuple(_dump(v) for v in value)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value
