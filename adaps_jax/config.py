"""The one typed configuration of a training run, with the paper's / SePS's defaults.

Every field can be set from the command line (`--set key=value`, `Config.with_overrides`) or a JSON
file (`Config.from_dict`), and is saved as JSON (`Config.to_dict`). `Config.validate()` turns an
impossible configuration into a `ConfigError` whose one-line message names the field and the
allowed values. `Hyperparams` are the numeric fields that change no shape: the trainer reads them
from its state when they are swept (one compiled program for every value).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import NamedTuple

from adaps_jax.methods import METHOD_TABLE, METHODS

# How the identity phase chooses K when num_clusters is None (see adaps_jax.identity.cluster_agents).
CLUSTER_SELECTIONS = ("dunn", "davies_bouldin")


class ConfigError(ValueError):
    """An impossible or unknown configuration value."""


class Hyperparams(NamedTuple):
    """The config's numeric fields that decide no shape, so one compiled program can train several
    values of them side by side (`experiments.run --sweep`). Python floats by default (constants in
    the compiled program); arrays when swept."""

    learning_rate: float
    entropy_coef: float
    value_coef: float
    gamma: float
    max_grad_norm: float
    mask_threshold: float
    pruning_rate: float
    vae_kl_weight: float
    vae_learning_rate: float


SWEEPABLE = Hyperparams._fields
# Sizes beyond any machine (a memory estimate before compiling catches what the machine at hand cannot hold).
MAX_WIDTH = 65_536
MAX_LAYERS = 16
MAX_INT32 = 2**31 - 1  # counts and sizes become int32 arrays


@dataclass(frozen=True)
class Config:
    # What to train.
    scenario: str = "bps-15a-3c"
    method: str = "fups"
    num_seeds: int = 4
    seed: int = 0
    total_steps: int = 2_000_000  # environment steps per seed, summed over the parallel copies
    num_logs: int = 20  # chunks per run, each ending in a logging point (metrics row, checkpoint)

    # A2C as in the SePS reference code.
    num_envs: int = 8
    n_steps: int = 5
    gamma: float = 0.99
    learning_rate: float = 3e-4
    adam_eps: float = 1e-5
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)

    # Identity phase (AdaPS, SePS): pretraining with a shared policy, then the VAE and k-means.
    # 200,000 environment steps = SePS's `pretraining_steps=5000` updates x 8 copies x 5 steps.
    pretrain_steps: int = 200_000  # environment steps, counted in the run's budget and its curves
    identity_samples: int = 65_536  # single-agent transitions kept for the VAE (all agents together)
    latent_size: int = 10
    num_clusters: int | None = None  # K; None chooses K automatically (see cluster_selection)
    cluster_selection: str = "dunn"  # how K is chosen: "dunn" or "davies_bouldin" (SePS)
    max_clusters: int = 10  # upper bound of the K search and SePS's networks (SePS: min(10, N))
    kmeans_restarts: int = 10
    vae_epochs: int = 20  # over the sample: 10,240 Adam steps at the defaults (docs/FIDELITY.md)
    vae_batch_size: int = 128
    vae_learning_rate: float = 1e-3
    vae_kl_weight: float = 1e-4
    continue_pretraining: bool = True  # RL continues the pretrained network and optimiser (SePS)

    # Masks.
    mask_threshold: float = 0.2  # lambda of AdaPS
    pruning_rate: float = 0.5  # SNP-PS: fraction of hidden neurons each agent drops

    # Where SePS's code differs from the textbook A2C (docs/FIDELITY.md); the defaults are correct.
    mask_invalid_actions: bool = False  # SePS: the policy sees every action; the env makes invalid ones no-ops
    clip_per_set: bool = False  # False: one global gradient norm over all networks, as SePS
    reference_returns: bool = False  # True: SePS's G_t = gamma G_{t+1} + (1 - d_t) r_t

    # Evaluation at every logging point: whole episodes on their own environment copies.
    eval_episodes: int = 32  # per seed, once greedy and once sampled; 0 turns evaluation off

    # Diagnostics.
    diversity_observations: int = 256  # shared observations for the policy-diversity figure
    diversity_max_agents: int = 64  # agents compared pairwise (a fixed subset beyond this)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def hyperparams(self) -> Hyperparams:
        return Hyperparams(*(getattr(self, name) for name in SWEEPABLE))

    @property
    def has_identity_phase(self) -> bool:
        return METHOD_TABLE[self.method].identity_phase

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: dict, where: str = "") -> "Config":
        """A config from JSON fields, each checked against its type (ConfigError naming the field
        and `where` it came from). Not validated: call `validate()`."""
        if not isinstance(fields, dict):
            raise ConfigError(f"config {where} must be a JSON object of config fields, got a {type(fields).__name__}".replace("  ", " "))
        return cls(**{name: _typed(name, value, where) for name, value in fields.items()})

    def with_overrides(self, items: list[str], refused: dict[str, str] | None = None) -> "Config":
        """This config with `KEY=VALUE` items applied (the command lines' `--set`). `refused` maps
        fields that must be chosen otherwise to the way to choose them (e.g. scenario: --scenario)."""
        changes = {}
        for item in items:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
            if refused and key in refused:
                raise ConfigError(f"--set {key}=... is not allowed; choose the {key} with {refused[key]}")
            changes[key] = parse_value(key, value.strip(), example=True)
        return self.replace(**changes)

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.n_steps

    @property
    def total_updates(self) -> int:
        return self.total_steps // self.steps_per_update

    # The logging points of a run: `pretrain_logs` points of `updates_per_pretrain_log` updates of
    # shared pretraining (AdaPS, SePS), then the identity phase, then `num_logs - pretrain_logs`
    # points of `updates_per_log` RL updates. The pretraining gets its share of the points so that
    # the learning curves show it on the same step axis.

    @property
    def pretrain_logs(self) -> int:
        if not self.has_identity_phase:
            return 0
        wanted = round(self.num_logs * self.pretrain_steps / max(self.total_steps, 1))
        return min(max(1, wanted), max(self.num_logs - 1, 1))

    @property
    def updates_per_pretrain_log(self) -> int:
        if not self.pretrain_logs:
            return 0
        updates = max(1, -(-self.pretrain_steps // self.steps_per_update))
        return -(-updates // self.pretrain_logs)

    @property
    def pretrain_updates(self) -> int:
        return self.pretrain_logs * self.updates_per_pretrain_log

    @property
    def updates_per_log(self) -> int:
        rl_logs = max(self.num_logs - self.pretrain_logs, 1)
        return max(1, (self.total_updates - self.pretrain_updates) // rl_logs)

    def updates_done(self, logs_done: int) -> int:
        """Updates after `logs_done` logging points, pretraining included."""
        pretrain = min(logs_done, self.pretrain_logs)
        return pretrain * self.updates_per_pretrain_log + (logs_done - pretrain) * self.updates_per_log

    def validate(self, num_agents: int | None = None) -> "Config":
        """Raises ConfigError for the first impossible value; returns self when all is well."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; allowed: {', '.join(METHODS)}")
        positive = ("num_seeds", "total_steps", "num_logs", "num_envs", "n_steps", "latent_size",
                    "max_clusters", "kmeans_restarts", "vae_epochs", "vae_batch_size",
                    "diversity_observations", "diversity_max_agents")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed={self.seed} is outside 0..{2**32 - 1}: PRNG keys hold 32 bits, so a larger "
                              "seed would silently repeat a smaller one")
        limits = {"num_seeds": 4096, "num_envs": 65536, "total_steps": 10**12}
        for name, limit in limits.items():
            if getattr(self, name) > limit:
                raise ConfigError(f"{name}={getattr(self, name)} is absurd; allowed: 1..{limit}")
        for name in ("gamma",):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("mask_threshold", "pruning_rate"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in the open interval (0, 1), got {getattr(self, name)}")
        for name in ("learning_rate", "adam_eps", "max_grad_norm", "vae_learning_rate"):
            if not getattr(self, name) > 0.0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("entropy_coef", "value_coef", "vae_kl_weight", "pretrain_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ConfigError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        if max(self.hidden_sizes) > MAX_WIDTH or len(self.hidden_sizes) > MAX_LAYERS:
            raise ConfigError(f"hidden_sizes={','.join(map(str, self.hidden_sizes))} is beyond any machine; allowed: "
                              f"1 to {MAX_LAYERS} layers of 1..{MAX_WIDTH} neurons")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and f.name not in ("seed", "total_steps") \
                    and value > MAX_INT32:
                raise ConfigError(f"{f.name}={value} is too large; allowed: at most {MAX_INT32}")
        if self.cluster_selection not in CLUSTER_SELECTIONS:
            raise ConfigError(f"unknown cluster_selection {self.cluster_selection!r}; allowed: "
                              f"{', '.join(CLUSTER_SELECTIONS)}")
        if self.has_identity_phase:
            if self.num_logs < 2:
                raise ConfigError(f"method {self.method} needs num_logs >= 2 (pretraining, then RL), got {self.num_logs}")
            if self.pretrain_steps < 1:
                raise ConfigError(f"method {self.method} needs pretrain_steps >= 1, got {self.pretrain_steps}")
            if self.identity_samples < 1:
                raise ConfigError(f"identity_samples must be a positive integer, got {self.identity_samples}")
        rl_logs = self.num_logs - self.pretrain_logs
        if self.total_updates - self.pretrain_updates < rl_logs:
            raise ConfigError(
                f"total_steps={self.total_steps} leaves too few steps for {rl_logs} logging points of "
                f"{self.steps_per_update} steps after {self.pretrain_updates * self.steps_per_update} "
                f"pretraining steps; raise total_steps or lower num_logs (or pretrain_steps)"
            )
        if self.eval_episodes < 0:
            raise ConfigError(f"eval_episodes must be a non-negative integer, got {self.eval_episodes}")
        if self.num_clusters is not None and self.num_clusters < 1:
            raise ConfigError(f"num_clusters must be a positive integer or None, got {self.num_clusters}")
        if num_agents is not None:
            if self.num_clusters is not None and self.num_clusters > num_agents:
                raise ConfigError(
                    f"num_clusters={self.num_clusters} is larger than the {num_agents} agents; allowed: 1..{num_agents}"
                )
        return self


def field_types() -> dict[str, type]:
    """Each config field's type (used to parse `--set key=value`)."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _typed(name: str, value, where: str = ""):
    """A config field's value from JSON, checked against the field's type."""
    types = field_types()
    where = f" {where}" if where else ""
    if name not in types:
        raise ConfigError(f"unknown config field {name!r}{where}; allowed: {', '.join(types)}")
    kind = types[name]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is int and is_int or kind is str and isinstance(value, str) or kind is bool and isinstance(value, bool):
        return value
    if kind is float and (is_int or isinstance(value, float)):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"config field {name}{where} is too large: {value}") from None
    if kind == (int | None) and (is_int or value is None):
        return value
    if kind == tuple[int, ...] and isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ConfigError(f"config field {name}{where} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def parse_value(name: str, text: str, example: bool = False):
    """Parses the text of `--set name=text` into the field's type; ConfigError when it cannot
    (with `example`, the message shows a valid value)."""
    types = field_types()
    if name not in types:
        raise ConfigError(f"unknown config field {name!r}; allowed: {', '.join(types)}")
    try:
        return _parse(types[name], name, text)
    except ConfigError as err:
        if not example:
            raise
        default = getattr(Config(), name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        raise ConfigError(f"{err}; for example {name}={shown}") from None


def _parse(kind, name: str, text: str):
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if kind == tuple[int, ...]:
            return tuple(int(x) for x in text.replace("(", "").replace(")", "").split(",") if x.strip())
        if kind == (int | None):
            return None if text.lower() in ("none", "auto") else int(text)
        if kind is int:
            return int(float(text)) if "e" in text.lower() else int(text)
        return kind(text)
    except OverflowError:
        raise ConfigError(f"{name}={text!r} is too large") from None
    except ValueError:
        expected = "comma-separated integers" if kind == tuple[int, ...] else getattr(kind, "__name__", str(kind))
        raise ConfigError(f"cannot read {name}={text!r} as {expected}") from None
