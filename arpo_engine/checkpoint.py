"""Checkpoints of a training run: a downloadable Hugging Face folder per step, plus resume state.

PRODUCT.md ("Checkpoint download", "runs that survive a worker crash"). Layout under `checkpoint.dir`:

    run-<id>/step-<N>/         config.json, generation_config.json, model.safetensors (or shards),
                               tokenizer.json, tokenizer_config.json, chat_template.jinja, run.json,
                               README.md: the download, a plain model (a LoRA adapter is merged in)
    run-<id>/latest, best      relative symlinks to step-<N>, swapped atomically
    run-<id>/resume/step-<N>/  optimizer.{json,safetensors}, rng.{json,safetensors}, state.json,
                               adapter_{config.json,model.safetensors} for LoRA, COMPLETE.json last

Each folder is written under a hidden temp name beside its final one and renamed into place, and the
resume folder (which ends with COMPLETE.json) is renamed only after its step folder, so a crash at any
moment leaves the previous resume point intact. Nothing is pickled: tensors go to safetensors and
everything else to JSON, so opening a checkpoint never runs code from it. The download folder's
contents are written by `checkpoint_download`, the crash-safe file handling is in `checkpoint_files`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arpo_engine import lora
from arpo_engine.checkpoint_download import run_info, write_download
from arpo_engine.checkpoint_files import (
    alias_target,
    read_json,
    remove_dir,
    set_alias,
    step_numbers,
    sweep_temp,
    write_atomically,
    write_json,
)
from arpo_engine.config import RunConfig

FORMAT_VERSION = 1
COMPLETE = "COMPLETE.json"
@dataclass(frozen=True)
class DataPosition:
    """Where the data loader stands: the next prompt is `order[index]` of epoch `epoch`."""

    epoch: int = 0
    index: int = 0
    order: tuple[int, ...] | None = None
    """This epoch's shuffled prompt order, so a resumed run sees the same prompts in the same order."""


@dataclass(frozen=True)
class ResumePoint:
    """A complete step: its download folder (the trainable weights) and its resume folder."""

    step: int
    model_dir: Path
    resume_dir: Path

    @property
    def has_adapter(self) -> bool:
        return (self.resume_dir / "adapter_model.safetensors").is_file()


@dataclass(frozen=True)
class OptimizerState:
    """`torch.optim.Optimizer.state_dict()` rebuilt from safetensors + JSON, ready for `load_state_dict`."""

    state: dict[int, dict[str, Any]]
    param_groups: list[dict[str, Any]]
    params: list[dict[str, Any]]
    """Per parameter index: name (when the model was given), shape and dtype, to check a restore."""


@dataclass(frozen=True)
class RngState:
    python_states: dict[str, Any] = field(default_factory=dict)
    """`random.Random.getstate()` per name."""
    torch_states: dict[str, torch.Tensor] = field(default_factory=dict)
    """`torch.Generator.get_state()` (uint8) per name."""
    numpy_states: dict[str, Any] = field(default_factory=dict)
    """`numpy.random.Generator.bit_generator.state` per name."""
    torch_global: torch.Tensor | None = None
    """`torch.get_rng_state()`: dropout and any other draw from torch's default CPU generator."""


@dataclass(frozen=True)
class ResumeState:
    point: ResumePoint
    step: int
    optimizer: OptimizerState | None
    rng: RngState
    data_position: DataPosition | None
    extras: dict[str, Any]


class CheckpointManager:
    """Saves steps of one run under `<root>/run-<run_id>/`, keeps the aliases, prunes old steps."""

    def __init__(self, root: Path | str, run_id: str, keep_last: int = 3) -> None:
        if keep_last < 0:
            raise ValueError("keep_last must be zero (keep every step) or more")
        self.run_dir = Path(root) / f"run-{run_id}"
        self.run_id = run_id
        self.keep_last = keep_last

    @classmethod
    def from_config(cls, config: RunConfig, run_id: str) -> CheckpointManager:
        return cls(Path(config.checkpoint.dir), run_id, config.checkpoint.keep_last)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        run_config: RunConfig | Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        rng: Mapping[str, Any] | None = None,
        data_position: DataPosition | Mapping[str, Any] | None = None,
        best_metric: float | None = None,
        extras: Mapping[str, Any] | None = None,
        agent: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the download folder, then the resume state; move the aliases; prune. Returns the folder.

        `agent` is the agent.json of the folder (`agent_spec.build_agent_spec`); the run's own model
        path goes into the resume state, which is not downloaded, never into the folder.
        """
        if step < 0:
            raise ValueError(f"step must be zero or more, got {step}")
        config = run_config.to_dict() if isinstance(run_config, RunConfig) else dict(run_config)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "resume").mkdir(exist_ok=True)
        sweep_temp(self.run_dir)
        sweep_temp(self.run_dir / "resume")
        step_dir, resume_dir = self.run_dir / f"step-{step}", self.run_dir / "resume" / f"step-{step}"
        # Re-saving a step: drop its old resume state first, so it can never pair with the new weights.
        remove_dir(resume_dir)
        info = run_info(self.run_id, step, config, metrics or {}, best_metric)
        write_atomically(step_dir, lambda tmp: write_download(tmp, model, tokenizer, info, agent))
        position = _data_position(data_position)
        base_path = str(config.get("model", {}).get("path", ""))
        write_atomically(
            resume_dir,
            lambda tmp: _write_resume(tmp, step, model, optimizer, rng or {}, position, dict(extras or {}), base_path),
        )
        self._update_aliases(step, best_metric)
        self._prune(step)
        return step_dir

    def latest(self) -> Path | None:
        return alias_target(self.run_dir / "latest")

    def best(self) -> Path | None:
        return alias_target(self.run_dir / "best")

    def resume_point(self) -> ResumePoint | None:
        return find_resume_point(self.run_dir)

    def resume(self) -> ResumeState | None:
        point = find_resume_point(self.run_dir)
        return load_resume_state(point) if point else None

    def _update_aliases(self, step: int, best_metric: float | None) -> None:
        set_alias(self.run_dir, "latest", f"step-{step}")
        if best_metric is None or math.isnan(best_metric):
            return
        current = self.best()
        current_value = read_json(current / "run.json").get("best_metric") if current else None
        # Strictly higher wins, so on a tie the earlier step stays best.
        if current is None or current.name == f"step-{step}" or current_value is None or (best_metric > current_value):
            set_alias(self.run_dir, "best", f"step-{step}")

    def _prune(self, newest: int) -> None:
        if self.keep_last == 0:
            return
        steps = sorted(step_numbers(self.run_dir) | step_numbers(self.run_dir / "resume"))
        best = self.best()
        keep = set(steps[-self.keep_last :]) | {newest}
        if best is not None:
            keep.add(int(best.name.removeprefix("step-")))
        for n in steps:
            if n not in keep:
                # Resume state first: a resume point must never outlive the weights it resumes from.
                remove_dir(self.run_dir / "resume" / f"step-{n}")
                remove_dir(self.run_dir / f"step-{n}")


def find_resume_point(run_dir: Path | str) -> ResumePoint | None:
    """The newest step whose download folder and COMPLETE-marked resume folder both exist, else None."""
    run_dir = Path(run_dir)
    for n in sorted(step_numbers(run_dir / "resume"), reverse=True):
        resume_dir, model_dir = run_dir / "resume" / f"step-{n}", run_dir / f"step-{n}"
        if (resume_dir / COMPLETE).is_file() and (model_dir / "config.json").is_file():
            return ResumePoint(step=n, model_dir=model_dir, resume_dir=resume_dir)
    return None


def load_resume_state(
    point: ResumePoint,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    rng: Mapping[str, Any] | None = None,
) -> ResumeState:
    """Read a resume folder; restore into `optimizer` and the `rng` generators when given."""
    d = point.resume_dir
    info = read_json(d / "state.json")
    if info.get("format") != FORMAT_VERSION:
        raise ValueError(f"{d}: resume format {info.get('format')!r}, expected {FORMAT_VERSION}")
    opt_state = None
    if (d / "optimizer.json").is_file():
        opt_json, opt_tensors = read_json(d / "optimizer.json"), load_file(d / "optimizer.safetensors")
        opt_state = OptimizerState(
            state={int(k): _decode(v, opt_tensors) for k, v in opt_json["state"].items()},
            param_groups=[_decode(g, opt_tensors) for g in opt_json["param_groups"]],
            params=opt_json["params"],
        )
    rng_json, rng_tensors = read_json(d / "rng.json"), load_file(d / "rng.safetensors")
    rng_state = RngState(
        python_states={k: _decode(v, {}) for k, v in rng_json["python"].items()},
        torch_states={k: rng_tensors[f"torch.{k}"] for k in rng_json["torch"]},
        numpy_states={k: _decode(v, {}) for k, v in rng_json["numpy"].items()},
        torch_global=rng_tensors.get("torch_global"),
    )
    pos = info.get("data_position")
    state = ResumeState(
        point=point,
        step=int(info["step"]),
        optimizer=opt_state,
        rng=rng_state,
        data_position=_data_position(pos),
        extras=info.get("extras", {}),
    )
    if optimizer is not None:
        restore_optimizer(optimizer, state)
    if rng is not None:
        restore_rng(rng, state)
    return state


def restore_optimizer(optimizer: torch.optim.Optimizer, state: ResumeState | OptimizerState) -> None:
    """Load saved state into an optimizer freshly built over the same parameters, in the same order."""
    saved = state.optimizer if isinstance(state, ResumeState) else state
    if saved is None:
        raise ValueError("this checkpoint was saved without optimizer state")
    current = [p for g in optimizer.param_groups for p in g["params"]]
    if len(current) != len(saved.params) or len(optimizer.param_groups) != len(saved.param_groups):
        raise ValueError(
            f"optimizer has {len(current)} parameters in {len(optimizer.param_groups)} groups; "
            f"the checkpoint has {len(saved.params)} in {len(saved.param_groups)}"
        )
    for p, meta in zip(current, saved.params, strict=True):
        if list(p.shape) != meta["shape"]:
            where = f"parameter {meta['index']} ({meta['name']})"
            raise ValueError(f"{where}: shape {list(p.shape)} != {meta['shape']}")
    # Clone: load_state_dict keeps tensors that already match the parameter's dtype and device, and
    # the optimizer updates its state in place, which would silently change the loaded ResumeState.
    cloned = {
        i: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()} for i, s in saved.state.items()
    }
    optimizer.load_state_dict({"state": cloned, "param_groups": saved.param_groups})


def restore_rng(targets: Mapping[str, Any], state: ResumeState | RngState, *, torch_global: bool = True) -> None:
    """Set each named generator (random.Random, torch.Generator, numpy Generator) to its saved state."""
    saved = state.rng if isinstance(state, ResumeState) else state
    for name, gen in targets.items():
        if isinstance(gen, random.Random) and name in saved.python_states:
            gen.setstate(saved.python_states[name])
        elif isinstance(gen, torch.Generator) and name in saved.torch_states:
            gen.set_state(saved.torch_states[name])
        elif hasattr(gen, "bit_generator") and name in saved.numpy_states:
            gen.bit_generator.state = saved.numpy_states[name]
        else:
            kind = type(gen).__name__
            raise ValueError(f"no saved state of the right kind for generator {name!r} ({kind})")
    if torch_global and saved.torch_global is not None:
        torch.set_rng_state(saved.torch_global)


def load_model(point: ResumePoint, *, base_model: str | Path | None = None) -> torch.nn.Module:
    """The trainable model at a resume point: the step folder, or base model + saved LoRA adapter.

    Build the model before calling `restore_rng`: creating LoRA layers draws from torch's global RNG.
    """
    from transformers import AutoModelForCausalLM

    if not point.has_adapter:
        return AutoModelForCausalLM.from_pretrained(point.model_dir, dtype="auto").train()
    from peft import PeftModel

    from arpo_engine.models import resolve_model_path

    base = base_model or read_json(point.resume_dir / "state.json").get("base_model_path")
    base = base or read_json(point.model_dir / "run.json")["base_model"]  # folders saved before that
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(str(base)), dtype="auto")
    return PeftModel.from_pretrained(model, point.resume_dir, is_trainable=True).train()


# --- writing the resume folder -------------------------------------------------------------------


def _write_resume(
    out: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    rng: Mapping[str, Any],
    position: DataPosition | None,
    extras: dict[str, Any],
    base_model_path: str = "",
) -> None:
    if optimizer is not None:
        tensors: dict[str, torch.Tensor] = {}
        write_json(out / "optimizer.json", _optimizer_json(optimizer, model, tensors))
        save_file(tensors, out / "optimizer.safetensors")
    rng_json, rng_tensors = _rng_files(rng)
    write_json(out / "rng.json", rng_json)
    save_file(rng_tensors, out / "rng.safetensors")
    if lora.has_lora(model):
        lora.save_adapter(model, out)  # adapter_{config.json,model.safetensors}, peft's format
    pos = None
    if position is not None:
        pos = {"epoch": position.epoch, "index": position.index, "order": position.order}
    state = {
        "format": FORMAT_VERSION, "step": step, "data_position": pos, "extras": extras,
        "base_model_path": base_model_path,  # kept here, not in the download folder: a path of this machine
    }  # fmt: skip
    write_json(out / "state.json", state)
    files = sorted(f.name for f in out.iterdir())
    write_json(out / COMPLETE, {"step": step, "files": files})  # last: marks the folder whole


def _optimizer_json(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    sd = optimizer.state_dict()
    names = {id(p): n for n, p in model.named_parameters()}
    flat = [p for g in optimizer.param_groups for p in g["params"]]
    params = [
        {"index": i, "name": names.get(id(p)), "shape": list(p.shape), "dtype": str(p.dtype)[6:]}
        for i, p in enumerate(flat)
    ]
    return {
        "state": {str(i): _encode(s, f"state.{i}", tensors) for i, s in sd["state"].items()},
        "param_groups": [_encode(g, f"group.{j}", tensors) for j, g in enumerate(sd["param_groups"])],
        "params": params,
    }


def _rng_files(rng: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    out: dict[str, Any] = {"python": {}, "torch": [], "numpy": {}}
    tensors = {"torch_global": torch.get_rng_state()}
    for name, gen in rng.items():
        if isinstance(gen, random.Random):
            out["python"][name] = _encode(gen.getstate(), "", {})
        elif isinstance(gen, torch.Generator):
            out["torch"].append(name)
            tensors[f"torch.{name}"] = gen.get_state()
        elif hasattr(gen, "bit_generator"):
            out["numpy"][name] = _encode(gen.bit_generator.state, "", {})
        else:
            raise TypeError(f"rng {name!r}: cannot save a {type(gen).__name__}")
    return out, tensors


def _data_position(value: DataPosition | Mapping[str, Any] | None) -> DataPosition | None:
    if value is None or isinstance(value, DataPosition):
        return value
    unknown = set(value) - {"epoch", "index", "order"}
    if unknown:
        raise ValueError(f"data_position: unknown keys {sorted(unknown)} (known: epoch, index, order)")
    order = value.get("order")
    return DataPosition(
        epoch=int(value.get("epoch", 0)),
        index=int(value.get("index", 0)),
        order=None if order is None else tuple(int(i) for i in order),
    )


# Values that JSON cannot hold are tagged: tensors become a key into the safetensors file, tuples
# (Adam's betas, random's state) and numpy arrays keep their type, so decoding gives back equal values.
def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}
    if type(value).__module__ == "numpy":
        if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
            return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{key}: cannot store a {type(value).__name__} in a checkpoint")


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__ndarray__" in value:
        import numpy as np

        return np.array(value["__ndarray__"], dtype=value["dtype"])
    return {k: _decode(v, tensors) for k, v in value.items()}
