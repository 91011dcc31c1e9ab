"""The run description: what a results folder's config.json holds, saved and loaded in one place.

    run = RunDescription.load(Path("results/bps-15a-3c-quick"))   # UsageError when unreadable
    for variant in run.variants():                                 # methods x swept values
        config = run.config_of(variant)

A run is a scenario, its methods, one shared `Config` (each method's is `config.replace(method=m)`),
optional swept values (`sweep`: field -> values, trained side by side in one compiled program) and
the code version that computed its numbers. Two runs are the same run when their `RUN_IDENTITY`
parts agree; only then does a folder continue. Plain Python: no JAX is imported here.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from adaps_jax.config import SWEEPABLE, Config, ConfigError
from adaps_jax.methods import METHOD_TABLE, METHODS
from envs import scenarios
from experiments import results
from experiments.cli import UsageError

# What makes two runs the same run (a folder's config.json must match all of it to be continued).
RUN_IDENTITY = ("scenario", "methods", "config", "sweep", "code_version")
ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """A hash of the library code that decides a run's numbers (adaps_jax, envs): resuming needs
    the same. The code is hashed as Python's syntax tree without docstrings, so comments, docstrings
    and layout may change under a long run; any change to what runs makes another version. The
    command-line code around the library is not hashed: tests check that a resumed run ends
    exactly where an uninterrupted one does, so it can change without stranding a long run."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("adaps_jax/*.py"), *ROOT.glob("envs/*.py")]):
        digest.update(path.name.encode() + _code_of(path.read_text()).encode())
    return digest.hexdigest()[:16]


def _code_of(source: str) -> str:
    """The syntax tree of a module without its docstrings, as text (comments are never in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


class Variant(NamedTuple):
    """One method at one point of the sweep: `name` labels its rows, curves and summary entry."""

    name: str  # "adaps", or "adaps[mask_threshold=0.1]" in a sweep
    method: str
    values: dict  # swept field -> value; {} without a sweep


def uses_field(method: str, name: str) -> bool:
    """Whether a method's training reads a swept field (masks and identity phase fields only where
    the method has them)."""
    props = METHOD_TABLE[method]
    return {"mask_threshold": props.masks == "cluster", "pruning_rate": props.masks == "random",
            "vae_kl_weight": props.identity_phase, "vae_learning_rate": props.identity_phase}.get(name, True)


def method_sweep(sweep: dict, method: str) -> dict:
    return {name: values for name, values in sweep.items() if uses_field(method, name)}


def sweep_grid(sweep: dict) -> list[dict]:
    """Every point of a sweep ({field: values}) as {field: value}, the first field slowest; [{}] without one."""
    return [dict(zip(sweep, point)) for point in itertools.product(*sweep.values())] or [{}]


def variant_name(method: str, values: dict) -> str:
    if not values:
        return method
    return f"{method}[{','.join(f'{k}={v:g}' for k, v in values.items())}]"


def base_method(name: str) -> str:
    """The method of a variant name (metrics.csv's `method` column, summary.json's keys)."""
    return name.split("[", 1)[0]


@dataclass(frozen=True)
class RunDescription:
    scenario: str
    preset: str
    methods: tuple[str, ...]
    out: str
    config: Config
    code_version: str
    sweep: dict = field(default_factory=dict)  # field -> tuple of values
    tensorboard: bool = False
    environment: dict | None = None  # library versions, devices, git commit: not part of the identity

    def variants(self) -> list[Variant]:
        """Every method at every point of its sweep grid (the fields in the order given), over the
        swept fields the method uses (FuPS has no mask threshold to sweep)."""
        return [Variant(variant_name(m, values), m, values) for m in self.methods
                for values in sweep_grid(method_sweep(self.sweep, m))]

    def method_variants(self, method: str) -> list[Variant]:
        return [v for v in self.variants() if v.method == method]

    def config_of(self, variant: Variant | str) -> Config:
        """The config of a method (its first sweep point's values are the ones swept over)."""
        method = variant if isinstance(variant, str) else variant.method
        values = {} if isinstance(variant, str) else variant.values
        return self.config.replace(method=method, **values)

    def replace(self, **changes) -> "RunDescription":
        return dataclasses.replace(self, **changes)

    # ---- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        data = {"scenario": self.scenario, "preset": self.preset, "methods": list(self.methods), "out": self.out,
                "config": self.config.to_dict(), "code_version": self.code_version,
                "tensorboard": self.tensorboard, "environment": self.environment}
        if self.sweep:  # absent without a sweep: the config.json of an unswept run is as it always was
            data["sweep"] = {k: list(v) for k, v in self.sweep.items()}
        return data

    @classmethod
    def from_json(cls, data, where: str) -> "RunDescription":
        """Checks every part (UsageError naming `where` and the part) and validates each method's config."""
        try:
            if not isinstance(data, dict):
                raise ValueError(f"not a JSON object but a {type(data).__name__}")
            missing = [k for k in ("scenario", "methods", "config") if k not in data]
            if missing:
                raise ValueError(f"lacks {', '.join(map(repr, missing))} (not written by experiments.run)")
            methods = data["methods"]
            if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
                raise ValueError(f"methods must be a list of {', '.join(METHODS)}, got {methods!r}")
            scenario = data["scenario"]
            if not isinstance(scenario, str):
                raise ValueError(f"scenario must be a name, got {scenario!r}")
            config = Config.from_dict(data["config"], "in config.json")
            sweep = parse_sweep_json(data.get("sweep", {}))
            run = cls(scenario=scenario, preset=str(data.get("preset", "")), methods=tuple(methods),
                      out=str(data.get("out", "")), config=config, code_version=str(data.get("code_version")),
                      sweep=sweep, tensorboard=bool(data.get("tensorboard")), environment=data.get("environment"))
            run.validate()
        except (ValueError, ConfigError, TypeError, KeyError) as err:
            raise UsageError(f"{where} is corrupt: {err}".splitlines()[0]) from None
        return run

    def validate(self) -> None:
        """Every variant's config is possible in this scenario (ConfigError, ValueError otherwise)."""
        agents = scenarios.num_agents(self.scenario)
        for name in self.sweep:
            if not any(uses_field(m, name) for m in self.methods):
                raise ConfigError(f"--sweep {name}: none of the methods {', '.join(self.methods)} uses it")
        for variant in self.variants():
            self.config_of(variant).validate(agents)

    def save(self, path: Path) -> None:
        results.write_json(path, self.to_json())

    @classmethod
    def load(cls, folder: Path) -> "RunDescription":
        """The run of a results folder (UsageError, one line, when it is not one or is unreadable)."""
        folder = Path(folder)
        path = folder / "config.json"
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such results folder")
        if not path.is_file():
            raise UsageError(f"{folder}: not a results folder (no config.json)")
        try:
            data = results.read_json(path)
        except (OSError, ValueError) as err:
            raise UsageError(f"{folder}: config.json is corrupt ({type(err).__name__}: {err})".splitlines()[0]) from None
        return cls.from_json(data, f"{path}")

    # ---- identity ----------------------------------------------------------------------------------

    def identity(self) -> dict:
        data = self.to_json()
        return {key: data.get(key, {}) for key in RUN_IDENTITY}

    def differences(self, other: "RunDescription") -> list[str]:
        """The identity parts (config fields named one by one) in which two runs differ."""
        mine, theirs = self.identity(), other.identity()
        diff = []
        for key in RUN_IDENTITY:
            if key == "config":
                diff += [f"config.{k}" for k in sorted(set(mine[key]) | set(theirs[key]))
                         if mine[key].get(k) != theirs[key].get(k)]
            elif mine[key] != theirs[key]:
                diff.append(key)
        return diff

    def fingerprint(self, method: str) -> str:
        """Identifies the run and method a checkpoint belongs to."""
        data = self.to_json()
        identity = {key: data[key] for key in ("scenario", "config", "code_version")}
        if self.sweep:
            identity["sweep"] = data["sweep"]
        return hashlib.sha256(json.dumps([identity, method], sort_keys=True).encode()).hexdigest()[:16]


class Listing(NamedTuple):
    """What readers of results (plot, report) need from a config.json."""

    scenario: str
    variants: list[Variant]  # in the run's order
    num_seeds: int | None
    config: dict  # config.json's config as written ({} when absent): not checked against this code

    @property
    def methods(self) -> list[str]:
        """The variants' names."""
        return [v.name for v in self.variants]


def read_listing(folder: Path) -> Listing:
    """The scenario, variants and seeds of a results folder, read leniently so that folders of
    earlier versions (other config fields, other code) still plot; ValueError naming the part."""
    try:
        data = results.read_json(Path(folder) / "config.json")
    except (OSError, ValueError) as err:
        raise ValueError(f"config.json is unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenario"), str):
        raise ValueError("config.json has no scenario name (not written by experiments.run)")
    methods = data.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"config.json's methods must be a list of method names, got {methods!r}")
    try:
        sweep = parse_sweep_json(data.get("sweep", {}))
    except ValueError as err:
        raise ValueError(f"config.json's {err}") from None
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    seeds = config.get("num_seeds")
    return Listing(data["scenario"], [Variant(variant_name(m, values), m, values) for m in methods
                                      for values in sweep_grid(method_sweep(sweep, m) if m in METHOD_TABLE else sweep)],
                   seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else None, config)


def parse_sweep(items: list[str]) -> dict:
    """`--sweep FIELD=V1,V2,...` items as {field: values}; UsageError naming a bad one."""
    sweep: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not text.strip():
            raise UsageError(f"--sweep needs FIELD=V1,V2,..., got {item!r}")
        if name not in SWEEPABLE:
            raise UsageError(f"--sweep {name}: not a field that can be swept in one program; allowed: "
                             f"{', '.join(SWEEPABLE)}")
        if name in sweep:
            raise UsageError(f"--sweep {name} is given twice; give all its values in one --sweep")
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"--sweep {item!r}: the values must be numbers, e.g. {name}=0.1,0.2") from None
        if len(set(values)) != len(values) or not values:
            raise UsageError(f"--sweep {item!r}: give each value once")
        sweep[name] = values
    return sweep


def parse_sweep_json(data) -> dict:
    if not isinstance(data, dict) or any(k not in SWEEPABLE or not isinstance(v, list) or not v
                                         or not all(isinstance(x, (int, float)) for x in v) for k, v in data.items()):
        raise ValueError(f"sweep must map fields of {', '.join(SWEEPABLE)} to lists of numbers, got {data!r}")
    return {k: tuple(float(x) for x in v) for k, v in data.items()}
