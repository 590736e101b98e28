"""Run configuration: nested frozen dataclasses with paper defaults (ARPO_SPEC.md §2-5).

This module imports nothing heavier than the standard library, so the web app can validate a run
config without torch, ray or vllm. `RunConfig.from_dict` rejects unknown keys and wrong types with a
message naming the dotted key; `RunConfig.validate` checks cross-field rules before any model loads.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class ModelConfig:
    path: str = "smollm2-135m"
    """A bundled model name (see `arpo_engine.models`) or a Hugging Face folder on disk."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype for sampling and training (float32 on CPU; bfloat16 on GPU)."""
    max_model_len: int = 4096
    """Longest prompt + response the sampler accepts, in tokens."""


@dataclass(frozen=True)
class DataConfig:
    train_path: str = ""
    """JSONL/CSV/parquet file of training prompts (formats in PRODUCT.md)."""
    eval_path: str = ""
    """Held-out prompts for greedy evaluation; empty disables evaluation."""
    max_prompt_tokens: int = 1024
    """Prompts longer than this (system prompt included) are rejected, with their line number."""
    shuffle: bool = True
    """Shuffle the training prompts each epoch (seeded by `RunConfig.seed`)."""


@dataclass(frozen=True)
class ToolConfig:
    name: str
    """Tool name the model calls; also the tag name in the `tags` call format."""
    kind: Literal["python", "search", "calculator", "http"]
    """Implementation: sandboxed python, corpus search, or a small built-in."""
    description: str = ""
    """Overrides the implementation's default description in the tool schema."""
    schema: Mapping[str, Any] | None = None
    """OpenAI function-tool schema `{type: function, function: {...}}`; the kind's default if unset."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Implementation options, e.g. `corpus_path`, `top_k`, `timeout_s`, `memory_mb`."""


@dataclass(frozen=True)
class RolloutConfig:
    sampler: Literal["vllm", "transformers"] = "vllm"
    """Generation backend: vLLM (prefix caching, top-k entropy) or transformers (exact entropy)."""
    call_format: Literal["tags", "hermes"] = "tags"
    """`tags`: <python>code</python> -> <result>; `hermes`: <tool_call>{json}</tool_call> -> <tool_response>."""
    group_size: int = 16
    """M: paths per prompt, the per-prompt budget forks never exceed (paper: 16)."""
    initial_samples: int = 8
    """N: full samples started per prompt before branching (paper: 8). GRPO is N = M."""
    max_response_tokens: int = 4096
    """Response budget in tokens, counting tool-result tokens (paper: 4096 for reasoning)."""
    max_tool_calls: int = 3
    """Tool calls allowed per trajectory; a further call ends the path (paper: 3 reasoning, 5-6 search)."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts (paper: 1.0)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (paper: 1.0)."""
    entropy_top_k: int = 10
    """Log-probs per token the vLLM sampler returns for the top-k entropy estimate (official: 10)."""
    tool_result_max_chars: int = 2000
    """Tool observations longer than this are cut, with a note to the model."""
    tool_concurrency: int = 8
    """Tool calls run at once across the paths of a batch."""
    memory_fraction: float = 0.2
    """vLLM `gpu_memory_utilization`: a fraction of GPU memory, or of RAM on the CPU build."""
    enable_prefix_caching: bool = True
    """Let vLLM reuse the KV cache of shared prefixes, so forked paths skip re-prefilling."""
    max_batch_size: int = 32
    """Transformers sampler: the most requests decoded together as one padded batch (vLLM schedules its own).
    A request's tokens depend on its batch neighbours only through float rounding, which can tip a near-tied
    draw; 1 makes every sample independent of how requests are batched or spread over samplers, slower."""
    device: str = "auto"
    """Where the sampler generates: `auto` (the first GPU when CUDA is present, else the CPU), `cpu`, `cuda`
    or `cuda:N`. vLLM in this process takes the first visible GPU; the transformers sampler shares the
    learner's model, so it runs on `optim.device`."""


@dataclass(frozen=True)
class BranchingConfig:
    enabled: bool = True
    """Entropy-based adaptive branching (ARPO). Off, the loop is plain GRPO sampling."""
    rule: Literal["stochastic", "threshold"] = "stochastic"
    """`stochastic` (official code): fork w.p. clip(a+b*dH); `threshold` (paper Eq. 5): fork iff a+b*dH > tau."""
    entropy_window: int = 20
    """k: tokens after the prompt / after a tool result whose entropy is measured (official: 20)."""
    window_reduce: Literal["sum", "mean"] = "sum"
    """How the k token entropies combine before dividing by ln|V| (official code: sum)."""
    alpha: float = 0.5
    """Base branch probability (paper: 0.5)."""
    beta: float = 0.2
    """Weight of the entropy change dH (paper: 0.2; its own sweep peaks at 0.4)."""
    tau: float = 0.5
    """Threshold of the `threshold` rule (paper: 0.5)."""
    beam_width: int = 2
    """Z: paths that continue from a branch point, the parent included (official beam_size 2 = one clone)."""
    consecutive_penalty: float = 0.0
    """AEPO: multiply the branch probability by (1 - penalty*l), l = consecutive rounds (tool indices), up to
    the one before the decision's, in which the prompt branched (AEPO: 0.05)."""
    dynamic_budget: bool = False
    """AEPO: choose N per prompt from one probe rollout, N = clamp(floor(M*sigmoid(0.5*(H_root - H_tool)))+1, 1, M)."""


@dataclass(frozen=True)
class RewardConfig:
    scorer: str = "arpo"
    """`arpo` (official: format -1, F1 of the boxed answer, +0.1 multi-tool), `exact_match`, `f1`, `math`, `python`."""
    python_source: str = ""
    """For `scorer: python`: source defining score(response, answers), run in the sandbox."""
    timeout_s: float = 10.0
    """Time limit of one user-scorer call."""


@dataclass(frozen=True)
class AlgorithmConfig:
    advantage: Literal["soft", "hard"] = "soft"
    """`soft`: GRPO advantage per path (paper default); `hard`: shared-prefix tokens get the mean (Eq. 6)."""
    clip_low: float = 0.2
    """PPO epsilon below 1 (paper: 0.2)."""
    clip_high: float = 0.2
    """PPO epsilon above 1 (paper: 0.2)."""
    dual_clip: float = 3.0
    """Dual-clip constant c for negative advantages (paper: 3)."""
    kl_coef: float = 0.0
    """KL penalty against the reference model (paper: 0)."""
    kl_type: Literal["low_var_kl", "k1"] = "low_var_kl"
    """KL estimator; `low_var_kl` is k3."""
    entropy_coef: float = 0.0
    """Entropy bonus: the loss subtracts this times the token-mean policy entropy (paper: 0)."""
    entropy_balanced_clip: bool = False
    """AEPO: clipped positive-advantage tokens keep a (1+eps)*A gradient."""
    entropy_aware_advantage: bool = False
    """AEPO: scale advantages by (1 + 0.2*z(token entropy)), z standardized over each mini-batch."""
    degenerate_groups: Literal["keep", "drop"] = "keep"
    """Groups whose paths all got the same reward: `keep` them at zero advantage (spec, verl; they count in
    the token-mean and the mini-batches), or `drop` them before the learner (DAPO-style)."""


PRECISIONS = ("auto", "fp32", "bf16")
"""`optim.precision`: `auto` is bf16 where the device has native bf16 matrix products, fp32 elsewhere."""
TREE_ATTENTIONS = ("auto", "segments", "flex", "varlen")
"""`optim.tree_attention` (see OptimConfig.tree_attention)."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-6
    """AdamW learning rate, constant (paper: 1e-6)."""
    weight_decay: float = 0.01
    """AdamW weight decay (paper: 0.01)."""
    grad_clip: float = 1.0
    """Gradient norm clip (paper: 1.0)."""
    ppo_epochs: int = 1
    """Passes over each batch of rollouts (paper: 1)."""
    train_batch_prompts: int = 128
    """Prompts per training step (paper: 128)."""
    mini_batch_prompts: int = 16
    """Prompts per optimizer update (paper: 16, i.e. 8 updates per step)."""
    micro_batch_tokens: int = 8192
    """Tokens per forward/backward before accumulating gradients; bounds memory."""
    precision: str = "fp32"
    """Learner compute: `fp32`; `bf16` autocast (weights, optimizer state and log-prob sums stay fp32), used
    only where the device has native bf16 matrix products (else fp32, and the run's log says why); `auto`:
    bf16 where it is native, fp32 elsewhere."""
    device: str = "auto"
    """Where the learner (policy and reference model) trains: `auto` (`cuda` when present, else `cpu`),
    `cpu`, `cuda` or `cuda:N`. On the sampler's GPU, `rollout.memory_fraction` leaves the rest to training."""
    activation_checkpointing: bool = False
    """Recompute each trainable decoder block's activations during backward instead of keeping them: less
    memory for long agent trajectories for one more forward pass of those blocks (on a demo-sized update
    on the CPU: 1.8 GB instead of 4.7 GB over the start, in about the same time; docs/benchmarks.md "Memory")."""
    tree_pack: bool = True
    """Compute each prefix that paths of a prompt share once (tree-packed update) instead of once per path.
    Exact for `soft` advantages; with `hard` a shared token is trained once with the mean advantage (Eq. 6)."""
    tree_attention: str = "auto"
    """How a tree-packed pass attends: `segments` (one SDPA call per chain between branch points; fastest on
    a CPU), `flex` (one FlexAttention kernel over the whole pack with a block-sparse tree mask; CUDA only),
    `varlen` (one FlashAttention variable-length call, each chain a sequence over its ancestors' gathered
    keys; CUDA and bf16 only, not yet measured on a GPU), or `auto` (`flex` on CUDA, `segments` elsewhere)."""
    trainable_layers: int = 0
    """Train only the top this-many transformer blocks (and the final norm); 0 trains every parameter.
    Backward then stops at the lowest trainable block, which roughly halves a step's cost on a CPU."""
    lora_rank: int = 0
    """Train LoRA adapters of this rank (peft) instead of the weights; 0 trains the weights. With
    `trainable_layers`, only the top blocks get adapters. Syncs and checkpoints hold the merged weights."""
    lora_alpha: int = 32
    """LoRA scaling numerator: the adapter's update is scaled by lora_alpha / lora_rank."""
    lora_target_modules: tuple[str, ...] = ("all-linear",)
    """Linear layers that get adapters, by name (`q_proj`, `mlp.down_proj`); `all-linear`: every linear
    layer of the decoder blocks (attention and MLP projections), never the LM head."""


@dataclass(frozen=True)
class SFTConfig:
    data_path: str = ""
    """Demonstration trajectories (JSONL of messages); empty skips the cold start."""
    epochs: float = 3.0
    """Passes over the demonstrations (official: 3)."""
    lr: float = 7e-6
    """SFT learning rate (official: 7e-6)."""
    batch_size: int = 8
    """Demonstrations per optimizer update."""
    max_examples: int = 0
    """Use at most this many demonstrations; 0 = all."""
    max_tokens: int = 0
    """Skip demonstrations longer than this many tokens (prompt included); 0 = keep all."""


@dataclass(frozen=True)
class CheckpointConfig:
    dir: str = "runs"
    """Folder that holds run-<name>/step-<N>/ checkpoints and resume state."""
    every_steps: int = 10
    """Save every this many RL steps (and at the end)."""
    keep_last: int = 3
    """Step folders kept besides `best`; older ones are deleted."""


@dataclass(frozen=True)
class DistributedConfig:
    samplers: int = 1
    """Sampler actors that share each step's prompts (a prompt's whole tree stays on one, for its prefix cache).
    More than 1, or `separate_learner`, runs the run on Ray: sampler and learner actors in one placement group."""
    separate_learner: bool = False
    """Train in a learner actor of its own (on a node marked `learner` when the cluster has one), even with one
    sampler; off with one sampler, the run stays in one process."""
    sampler_cpus: float = 1.0
    """CPUs reserved for each sampler actor."""
    sampler_gpus: float = 0.0
    """GPUs reserved for each sampler actor (vLLM generates on the first one it is given)."""
    learner_cpus: float = 1.0
    """CPUs reserved for the learner actor."""
    learner_gpus: float = 0.0
    """GPUs reserved for the learner actor."""
    max_restarts: int = 2
    """Times a run re-places its actors after losing one (its node died), resuming from the last checkpoint."""
    weight_sync: Literal["object_store", "collective"] = "object_store"
    """How the learner's weights reach the samplers after each update: through Ray's object store (published
    once, read by each), or a torch.distributed broadcast (NCCL when learner and samplers have GPUs, else gloo)."""

    @property
    def enabled(self) -> bool:
        """True when the run goes to Ray actors instead of staying in one process."""
        return self.samplers > 1 or self.separate_learner


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    """RL steps to run."""
    eval_every: int = 10
    """Greedy held-out evaluation every this many steps (and at the start and end); 0 = never."""
    eval_prompts: int = 0
    """Held-out prompts per evaluation; 0 = all of data.eval_path."""
    eval_at_start: bool = True
    """Also evaluate the starting policy before step 1 (off when it is measured elsewhere)."""


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    """Human-readable run name."""
    seed: int = 0
    """Seeds sampling, branching draws and data order."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tools: tuple[ToolConfig, ...] = ()
    """Tools the agent may call, each with an OpenAI function schema."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    branching: BranchingConfig = field(default_factory=BranchingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    system_prompt: str = ""
    """Extra instructions placed before the generated tool description in the system prompt."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return _build(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def validate(self, *, base_dir: Path | None = None) -> RunConfig:
        """Cross-field checks that need no model; returns self so calls can chain."""
        r, b = self.rollout, self.branching
        if r.group_size < 1:
            raise ConfigError("rollout.group_size (M) must be at least 1")
        if not 1 <= r.initial_samples <= r.group_size:
            raise ConfigError(
                f"rollout.initial_samples (N={r.initial_samples}) must be between 1 and "
                f"rollout.group_size (M={r.group_size})"
            )
        if r.max_response_tokens < 1:
            raise ConfigError("rollout.max_response_tokens must be positive")
        if r.max_tool_calls < 0:
            raise ConfigError("rollout.max_tool_calls must be zero or more")
        if r.temperature < 0:
            raise ConfigError("rollout.temperature must be zero or more")
        if not 0 < r.top_p <= 1:
            raise ConfigError("rollout.top_p must be in (0, 1]")
        if b.entropy_window < 1:
            raise ConfigError("branching.entropy_window must be at least 1")
        if b.beam_width < 2:
            raise ConfigError("branching.beam_width (Z) must be at least 2: a fork adds Z-1 paths")
        if not 0 <= b.consecutive_penalty < 1:
            raise ConfigError("branching.consecutive_penalty must be in [0, 1)")
        if self.rollout.max_batch_size < 1:
            raise ConfigError("rollout.max_batch_size must be at least 1")
        if self.optim.tree_attention not in TREE_ATTENTIONS:
            raise ConfigError(
                f"optim.tree_attention must be one of {', '.join(TREE_ATTENTIONS)}, not {self.optim.tree_attention!r}"
            )
        if self.optim.precision not in PRECISIONS:
            raise ConfigError(f"optim.precision must be auto, fp32 or bf16, not {self.optim.precision!r}")
        self._validate_devices()
        self._validate_lora()
        self._validate_distributed()
        if self.model.max_model_len <= self.data.max_prompt_tokens:
            raise ConfigError("model.max_model_len must exceed data.max_prompt_tokens")
        names = [t.name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"tools: duplicate tool name(s) {', '.join(duplicates)}")
        for t in self.tools:
            if not t.name.isidentifier():
                raise ConfigError(f"tools: name {t.name!r} must be an identifier (letters, digits, _)")
        return self

    def _validate_devices(self) -> None:
        for key, value in (("optim.device", self.optim.device), ("rollout.device", self.rollout.device)):
            if not _DEVICE.fullmatch(value):
                raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, not {value!r}")
        learner, sampler = self.optim.device, self.rollout.device
        attention = self.optim.tree_attention
        if attention in ("flex", "varlen") and learner == "cpu":
            raise ConfigError(
                f"optim.tree_attention={attention} runs on CUDA only; optim.device is cpu (use auto or segments)"
            )
        if attention == "varlen" and self.optim.precision == "fp32":
            raise ConfigError(
                "optim.tree_attention=varlen needs optim.precision bf16 (FlashAttention has no fp32 kernel)"
            )
        if self.rollout.sampler == "transformers" and sampler not in ("auto", learner):
            raise ConfigError(
                f"rollout.device: the transformers sampler generates with the learner's model, on optim.device "
                f"({learner}); leave rollout.device at auto or set it to {learner}"
            )
        if self.rollout.sampler == "vllm" and sampler not in ("auto", "cpu", "cuda", "cuda:0"):
            raise ConfigError(
                "rollout.device: vLLM in this process runs on the first visible GPU (cuda:0); choose another GPU "
                "with CUDA_VISIBLE_DEVICES, and put the learner elsewhere with optim.device"
            )

    def _validate_lora(self) -> None:
        o = self.optim
        if o.lora_rank < 0:
            raise ConfigError("optim.lora_rank must be zero (no LoRA) or more")
        if o.lora_alpha <= 0:
            raise ConfigError("optim.lora_alpha must be positive")
        targets = o.lora_target_modules
        if not targets:
            raise ConfigError("optim.lora_target_modules must name at least one layer, or be [all-linear]")
        if "all-linear" in targets and len(targets) > 1:
            raise ConfigError("optim.lora_target_modules: all-linear already names every layer; list it alone")
        for t in targets:
            if t != "all-linear" and not all(part.isidentifier() for part in t.split(".")):
                raise ConfigError(f"optim.lora_target_modules: {t!r} is not a module name such as q_proj")

    def _validate_distributed(self) -> None:
        d = self.distributed
        if d.samplers < 1:
            raise ConfigError("distributed.samplers must be at least 1")
        if d.max_restarts < 0:
            raise ConfigError("distributed.max_restarts must be zero or more")
        for role in ("sampler", "learner"):
            cpus, gpus = getattr(d, f"{role}_cpus"), getattr(d, f"{role}_gpus")
            if cpus < 0 or gpus < 0:
                raise ConfigError(f"distributed.{role}_cpus and distributed.{role}_gpus must be zero or more")
            if cpus + gpus <= 0:
                raise ConfigError(f"distributed.{role}_cpus: a {role} actor must reserve a CPU or a GPU")
        if d.samplers > self.optim.train_batch_prompts:
            raise ConfigError(
                f"distributed.samplers ({d.samplers}) is more than optim.train_batch_prompts "
                f"({self.optim.train_batch_prompts}): a sampler would get no prompt"
            )


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
"""Device names a config may give: `auto`, `cpu`, `cuda` or `cuda:N`."""

ConfigT = TypeVar("ConfigT")


def _build(cls: type[ConfigT], data: Any, where: str) -> ConfigT:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r} (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _coerce(rest[0], value, where)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint in (dict,):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


PRESET_DIR = Path(__file__).with_name("presets")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_mapping(path: Path) -> dict[str, Any]:
    import json

    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return dict(raw)


def load_preset(name: str) -> dict[str, Any]:
    """A named preset ("arpo_paper", "grpo_baseline", "aepo"): the keys that define an algorithm variant."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    return _read_mapping(path)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two config mappings; `override` wins."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path, *, preset: str | None = None) -> RunConfig:
    """Read a YAML or JSON run config, optionally with a preset applied over it.

    Relative data, corpus and checkpoint paths resolve against the config file's folder, so a config
    means the same files whatever directory the command runs from.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no config file at {p}")
    raw = _resolve_paths(_read_mapping(p), p.parent)
    if preset:
        raw = merge(raw, load_preset(preset))
    return RunConfig.from_dict(raw).validate()


_PATH_KEYS = {"train_path", "eval_path", "corpus_path", "data_path"}
"""Keys that hold a file path wherever they appear (data, sft, tool options)."""
_DOTTED_PATH_KEYS = {"checkpoint.dir"}
"""Keys whose name alone is too generic to mark a path."""


def _resolve_paths(raw: Any, base: Path, where: str = "") -> Any:
    if isinstance(raw, Mapping):
        out = {}
        for k, v in raw.items():
            dotted = f"{where}.{k}" if where else str(k)
            relative = isinstance(v, str) and v and not Path(v).is_absolute()
            # model.path may also be a bundled model's name, so only an explicit ./ or ../ marks a folder
            folder = k == "path" and str(v).startswith(("./", "../"))
            is_path = k in _PATH_KEYS or dotted in _DOTTED_PATH_KEYS or folder
            if relative and is_path:
                v = str((base / v).resolve())
            out[k] = _resolve_paths(v, base, dotted)
        return out
    if isinstance(raw, list):
        return [_resolve_paths(v, base, where) for v in raw]
    return raw
