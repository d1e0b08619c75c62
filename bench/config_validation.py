"""exporter.schema against validation libraries: errors reported at once, and memory.

    pip install attrs cattrs msgspec pydantic   # not dependencies: only this comparison uses them
    python -m bench.config_validation [--rounds 5]

Our ``Config`` tree (every model, field, type, default and bound of exporter/config.py) is
written out as classes for each library: pydantic ``BaseModel`` (extra="forbid"), attrs
``@define`` with ``ge``/``le`` validators structured by cattrs with ``detailed_validation``,
stdlib dataclasses structured by cattrs (bounds checked in ``__post_init__``, the only place a
dataclass has for them), and ``msgspec.Struct`` with ``Meta`` bounds and
``forbid_unknown_fields``. Each variant runs in a fresh interpreter that has imported yaml (the
daemon reads YAML with it either way): RSS before, after importing the library and the classes,
and after validating a config with one target of each kind. Then a config with six mistakes
(a wrong type, a missing key, two bounds in one section, a bad choice, an unknown key) shows
what each reports. The results are in docs/config-validation.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any, Literal

from exporter import schema as schema_module
from exporter.config import Config
from exporter.schema import FieldInfo, Model

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("schema", "pydantic", "attrs+cattrs", "dataclasses+cattrs", "msgspec")

GOOD: dict[str, Any] = {
    "interval": 15,
    "log": {"level": "info"},
    "collectors": {"redis": {"scan_count": 500}},
    "targets": {
        "postgres": [{"name": "db", "dsn": "postgresql://app@db:5432/app", "databases": ["app"]}],
        "redis": [{"name": "cache", "url": "redis://cache:6379/0", "namespaces": ["api"]}],
        "pgbouncer": [{"name": "bouncer", "dsn": "postgresql://stats@pgb:6432/pgbouncer"}],
        "app": [{"name": "shop", "url": "redis://cache:6379/0"}],
    },
}
BAD: dict[str, Any] = {
    "log": {"level": "loud"},  # not one of the choices
    "web": {"max_connections": 512, "listen_adress": ":9839"},  # unknown key
    "collectors": {"redis": {"scan_count": 5, "namespace_limit": 0}},  # two bounds (ge=10, ge=1)
    "targets": {
        "postgres": [{"dsn": "postgresql://app@db/app"}],  # name missing
        "redis": [{"name": "cache", "url": "redis://c", "port": "sixty"}],  # not a number
    },
}


# --- writing the Config tree out for each library --------------------------------------------


def models(cls: type[Model], out: dict[str, type[Model]]) -> dict[str, type[Model]]:
    """Every model class reachable from ``cls``, dependencies first."""
    for hint, _info in cls._spec().fields.values():
        for inner in _inner_models(hint):
            if inner.__name__ not in out:
                models(inner, out)
    out[cls.__name__] = cls
    return out


def _inner_models(hint: Any) -> list[type[Model]]:
    if isinstance(hint, type) and issubclass(hint, Model):
        return [hint]
    return [m for arg in typing.get_args(hint) for m in _inner_models(arg)]


def _bounds(hint: Any, info: FieldInfo) -> dict[str, float]:
    found = {k: getattr(info, k) for k in ("ge", "gt", "le") if getattr(info, k) is not None}
    if typing.get_origin(hint) is typing.Annotated:
        for meta in typing.get_args(hint)[1:]:
            if isinstance(meta, FieldInfo):
                found.update(_bounds(Any, meta))
    return found


def render(hint: Any) -> str:
    """The type as source text, our Annotated metadata dropped (bounds are handled apart)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "Any"
    if origin is typing.Annotated:
        return render(args[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " | ".join(render(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else render(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return hint.__name__
    raise TypeError(f"cannot render {hint!r}")


def _default(info: FieldInfo, kind: str) -> str | None:
    """The default as source (None: required); mutable ones through a factory."""
    value = info.factory() if info.factory is not None else info.default
    if value is schema_module._MISSING:
        return None
    if not isinstance(value, Model | list | dict):
        return repr(value)
    # a frozen default is a FrozenList or FrozenDict: the classes get plain ones
    if isinstance(value, Model):
        factory = type(value).__name__
    else:
        factory = "list" if isinstance(value, list) else "dict"
    return {
        "pydantic": f"Field(default_factory={factory})",
        "attrs+cattrs": f"attrs.field(factory={factory}{{validators}})",
        "dataclasses+cattrs": f"dataclasses.field(default_factory={factory})",
        "msgspec": f"msgspec.field(default_factory={factory})",
    }[kind]


def source(kind: str) -> str:
    # each module imports its own library only
    library = {
        "pydantic": "from pydantic import BaseModel, ConfigDict, Field",
        "attrs+cattrs": "import attrs",
        "dataclasses+cattrs": "import dataclasses",
        "msgspec": "import msgspec",
    }[kind]
    lines = [
        "from __future__ import annotations",
        library,
        "from pathlib import Path",
        "from typing import Annotated, Any, Literal",
    ]
    for name, cls in models(Config, {}).items():
        fields = cls._spec().fields
        # required fields first: dataclasses and msgspec insist on that order
        ordered = sorted(fields.items(), key=lambda item: _default(item[1][1], kind) is not None)
        if kind == "pydantic":
            lines += [f"class {name}(BaseModel):", "    model_config = ConfigDict(extra='forbid')"]
        elif kind == "attrs+cattrs":
            lines += ["@attrs.define(kw_only=True)", f"class {name}:"]
        elif kind == "dataclasses+cattrs":
            lines += ["@dataclasses.dataclass(kw_only=True)", f"class {name}:"]
        else:
            lines += [f"class {name}(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):"]
        checks: list[str] = []
        for field, (hint, info) in ordered:
            text, default, bounds = render(hint), _default(info, kind), _bounds(hint, info)
            if kind == "pydantic":
                spec = ", ".join(f"{k}={v}" for k, v in bounds.items())
                if default is None:
                    default = f"Field({spec})" if spec else None
                elif bounds and not default.startswith("Field("):
                    default = f"Field({default}, {spec})"
            elif kind == "msgspec" and bounds:
                meta = ", ".join(f"{k}={v}" for k, v in bounds.items())
                parts = text.split(" | ")  # the bound goes on the number, not on its None
                parts[0] = f"Annotated[{parts[0]}, msgspec.Meta({meta})]"
                text = " | ".join(parts)
            elif kind == "attrs+cattrs":
                found = [f"attrs.validators.{k}({v})" for k, v in bounds.items()]
                if "None" in text.split(" | "):
                    found = [f"attrs.validators.optional([{', '.join(found)}])"] if found else []
                validators = f"validator=[{', '.join(found)}]" if found else ""
                if default is None:
                    default = f"attrs.field({validators})" if validators else None
                elif "{validators}" in default:
                    default = default.format(validators=", " + validators if validators else "")
                elif validators:
                    default = f"attrs.field(default={default}, {validators})"
            elif kind == "dataclasses+cattrs":
                for k, v in bounds.items():
                    op = {"ge": "<", "gt": "<=", "le": ">"}[k]
                    checks.append(
                        f"        if self.{field} is not None and self.{field} {op} {v}: "
                        f"raise ValueError('{field} out of bounds')"
                    )
            lines.append(f"    {field}: {text}" + (f" = {default}" if default else ""))
        if checks:
            lines += ["    def __post_init__(self) -> None:", *checks]
        if len(lines[-1]) and lines[-1].endswith(":"):
            lines.append("    pass")
    return "\n".join(lines) + "\n"


# --- one variant in a fresh interpreter ------------------------------------------------------

CHILD = r"""
import importlib, json, sys
import yaml  # the daemon reads YAML whatever validates it
for name in sys.argv[5].split(","):  # --context daemon: what the daemon has imported anyway
    if name:
        importlib.import_module(name)

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

kind, module_dir = sys.argv[1], sys.argv[2]
good, bad = json.loads(sys.argv[3]), json.loads(sys.argv[4])
out = {"base": rss_kib()}
if kind == "schema":
    from exporter.config import Config
    from exporter.schema import ValidationError
    out["imported"] = rss_kib()
    Config.model_validate(good)
    out["built"] = rss_kib()
    try:
        Config.model_validate(bad)
    except ValidationError as exc:
        out["errors"] = exc.problems()
else:
    sys.path.insert(0, module_dir)
    if kind == "pydantic":
        import pydantic
        import generated_pydantic as g
        out["imported"] = rss_kib()
        g.Config.model_validate(good)
        out["built"] = rss_kib()
        try:
            g.Config.model_validate(bad)
        except pydantic.ValidationError as exc:
            out["errors"] = [".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors()]
    elif kind in ("attrs+cattrs", "dataclasses+cattrs"):
        import cattrs
        g = __import__("generated_" + kind.split("+")[0])
        import typing
        conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)

        # cattrs has no hook for unions of different shapes (list or Literal, list or model):
        # pick the branch by the value's shape, as exporter.schema does
        def mixed(tp):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            return typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) and (
                len(args) > 1
            )

        def by_shape(value, tp):
            if value is None:
                return None
            for arg in typing.get_args(tp):
                origin = typing.get_origin(arg) or arg
                if origin is list and isinstance(value, list):
                    return conv.structure(value, arg)
                if isinstance(origin, type) and hasattr(origin, "__attrs_attrs__") + hasattr(
                    origin, "__dataclass_fields__"
                ) and isinstance(value, dict):
                    return conv.structure(value, arg)
                if origin is typing.Literal and value in typing.get_args(arg):
                    return value
            raise ValueError("matches no branch of the union")

        conv.register_structure_hook_func(mixed, by_shape)
        out["imported"] = rss_kib()
        conv.structure(good, g.Config)
        out["built"] = rss_kib()
        try:
            conv.structure(bad, g.Config)
        except Exception as exc:
            out["errors"] = cattrs.transform_error(exc)
    else:
        import msgspec
        import generated_msgspec as g
        out["imported"] = rss_kib()
        msgspec.convert(good, g.Config, strict=False)
        out["built"] = rss_kib()
        try:
            msgspec.convert(bad, g.Config, strict=False)
        except msgspec.ValidationError as exc:
            out["errors"] = [str(exc)]
print(json.dumps(out))
"""


#: The daemon's third-party imports, loaded before the variant with ``--context daemon``.
DAEMON_IMPORTS = (
    "asyncio,aiohttp.web,asyncpg,redis.asyncio,prometheus_client,psutil,"
    "apscheduler.schedulers.asyncio"
)


def run_child(kind: str, module_dir: Path, context: str) -> dict[str, Any]:
    argv = [kind, str(module_dir), json.dumps(GOOD), json.dumps(BAD), context]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed: {done.stderr.strip()[-3000:]}")
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--context", choices=("bare", "daemon"), default="bare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        module_dir = Path(tmp)
        for kind in VARIANTS[1:]:
            name = "generated_" + kind.split("+")[0]
            (module_dir / f"{name}.py").write_text(source(kind))
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in VARIANTS}
        for _ in range(args.rounds):
            for kind in VARIANTS:
                context = DAEMON_IMPORTS if args.context == "daemon" else ""
                runs[kind].append(run_child(kind, module_dir, context))
    print(f"{'variant':20} {'import KiB':>10} {'+ Config KiB':>12} {'total KiB':>10} errors")
    for kind, results in runs.items():
        imported = statistics.median(r["imported"] - r["base"] for r in results)
        built = statistics.median(r["built"] - r["imported"] for r in results)
        errors = results[0].get("errors", [])
        print(f"{kind:20} {imported:10.0f} {built:12.0f} {imported + built:10.0f} {len(errors)}")
        for line in errors:
            print(f"{'':22}{line}")


if __name__ == "__main__":
    main()
