"""LoRA adapters for the learner (peft), injected in place so the policy stays a plain HF causal LM.

`apply_lora` replaces the targeted linear layers of a Hugging Face model with peft LoRA layers in
place (`inject_adapter_in_model`), not behind a `PeftModel` wrapper: `model.base_model` is still the
decoder body that `token_logprobs` runs, and a transformers sampler that shares the object generates
from the adapted policy. Only the adapter matrices train; every base weight is frozen.

Outside the learner the adapters never show: `merged_state_dict` gives W + scale * B @ A under the
plain Hugging Face names, which is what the vLLM weight sync pushes and what a checkpoint's download
folder holds. `save_adapter` / `load_adapter` keep the adapter itself in peft's file format for resume.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from arpo_engine.config import ConfigError, OptimConfig

ADAPTER = "default"
"""The one adapter's name inside peft layers (parameter names `….lora_A.default.weight`)."""
ALL_LINEAR = "all-linear"
"""`optim.lora_target_modules` entry: every linear layer of the decoder body, so not the LM head."""
_PEFT_PREFIX = "base_model.model."
"""How peft's files name weights: as seen from a `PeftModel`, so `PeftModel.from_pretrained` reads them."""


def body_linear_names(model: Any) -> list[str]:
    """Dotted names of the nn.Linear modules in the decoder body (attention and MLP projections)."""
    return [name for name, m in model.base_model.named_modules() if isinstance(m, torch.nn.Linear)]


def lora_config(model: Any, optim: OptimConfig) -> Any:
    """The peft LoraConfig for `optim`: its targets checked against the model, dropout 0 (see module doc)."""
    from peft import LoraConfig

    linear = body_linear_names(model)
    leaves = sorted({name.rsplit(".", 1)[-1] for name in linear})
    wanted = list(optim.lora_target_modules)
    if wanted == [ALL_LINEAR]:
        wanted = leaves
    for target in wanted:
        if not any(name == target or name.endswith("." + target) for name in linear):
            raise ConfigError(
                f"optim.lora_target_modules: the model has no linear layer {target!r} "
                f"(it has: {', '.join(leaves) or 'none'})"
            )
    return LoraConfig(
        r=optim.lora_rank,
        lora_alpha=optim.lora_alpha,
        lora_dropout=0.0,  # the learner runs in eval mode and reuses its forward as the old policy
        target_modules=wanted,
        layers_to_transform=_top_layers(model, optim.trainable_layers),
        bias="none",
    )


def _top_layers(model: Any, trainable_layers: int) -> list[int] | None:
    """Indices of the top `trainable_layers` decoder blocks, or None for all of them."""
    if trainable_layers <= 0:
        return None
    layers = getattr(model.base_model, "layers", None)
    if layers is None:
        raise ValueError("optim.trainable_layers needs a decoder with a `layers` list (Llama, Qwen, Mistral …)")
    if trainable_layers >= len(layers):
        return None
    return list(range(len(layers) - trainable_layers, len(layers)))


def apply_lora(model: Any, optim: OptimConfig, *, seed: int = 0) -> None:
    """Inject LoRA adapters into `model` in place and freeze everything else.

    B starts at zero, so the adapted model equals the base model. A's random start is drawn from
    `seed` on a forked RNG: the same config gives the same adapters, and torch's global RNG (whose
    state a checkpoint saves) is left as it was.
    """
    from peft import inject_adapter_in_model

    if has_lora(model):
        raise ValueError("the model already has LoRA adapters")
    config = lora_config(model, optim)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name)


def lora_layers(model: Any) -> dict[str, Any]:
    """Module name -> peft LoRA layer (empty for a model without adapters; cheap then, peft not imported)."""
    if not getattr(model, "peft_config", None):
        return {}
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def has_lora(model: Any) -> bool:
    return bool(lora_layers(model))


@contextmanager
def adapters_disabled(model: Any) -> Iterator[None]:
    """Run `model` as its base weights, adapters off: the KL reference of a LoRA run, with no second copy.

    Adapters start at B = 0, so the base is exactly the starting policy. peft's toggle also resets the
    adapters' requires_grad; the flags are restored as they were so a frozen block stays frozen.
    """
    layers = list(lora_layers(model).values())
    flags = {id(p): p.requires_grad for p in model.parameters()}
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])


def _unwrap(model: Any) -> Any:
    """The Hugging Face model inside a peft `PeftModel`; any other model as it is."""
    from_peft = hasattr(model, "get_base_model") and hasattr(model, "merge_and_unload")
    return model.get_base_model() if from_peft else model


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The model's effective weights under the plain Hugging Face names: LoRA layers merged in.

    Each adapted weight is W + scale * B @ A (peft's own delta, so exactly what a peft merge gives);
    every other tensor is the model's own (tied weights keep sharing storage). Nothing in the model
    changes, so training continues bit for bit. A model without adapters gives its `state_dict()`.
    """
    model = _unwrap(model)
    state = model.state_dict()
    layers = lora_layers(model)
    if not layers:
        return dict(state)
    adapter_keys = {  # everything a LoRA layer holds besides its base layer
        f"{name}.{key}"
        for name, layer in layers.items()
        for key in layer.state_dict()
        if not key.startswith("base_layer.")
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in adapter_keys:
            continue
        head, sep, tail = key.partition(".base_layer.")
        out[f"{head}.{tail}" if sep and head in layers else key] = value
    with torch.no_grad():
        for name, layer in layers.items():
            if layer.merged or layer.disable_adapters:
                continue  # the base weight already is the effective one
            key = f"{name}.weight"
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    out[key] = out[key] + layer.get_delta_weight(adapter).to(out[key].dtype)
    return out


def adapter_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The adapter weights as peft saves them (`base_model.model.….lora_A.weight`), on the CPU."""
    from peft import get_peft_model_state_dict

    inner = _unwrap(model)
    prefix = "" if inner is not model else _PEFT_PREFIX
    weights = get_peft_model_state_dict(model, adapter_name=_adapter_name(model))
    return {prefix + k: v.detach().cpu().contiguous() for k, v in weights.items()}


def _adapter_name(model: Any) -> str:
    name = getattr(model, "active_adapter", ADAPTER)
    return name if isinstance(name, str) else ADAPTER  # a transformers model's is a method


def save_adapter(model: Any, out: Path) -> None:
    """adapter_config.json and adapter_model.safetensors, loadable by `PeftModel.from_pretrained` too."""
    from safetensors.torch import save_file

    model.peft_config[_adapter_name(model)].save_pretrained(out)  # writes adapter_config.json only
    save_file(adapter_state_dict(model), Path(out) / "adapter_model.safetensors")


_CHECKED = ("r", "lora_alpha", "target_modules", "layers_to_transform", "use_rslora", "use_dora")


def load_adapter(model: Any, folder: Path) -> None:
    """Copy saved adapter weights into a model that `apply_lora` prepared with the same settings.

    Refuses a folder whose rank, alpha, targets or layers differ, or whose weights do not match the
    model's adapters one to one; the values are copied bit for bit, the parameters stay the same objects.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    saved_config = json.loads((folder / "adapter_config.json").read_text())
    current = model.peft_config[ADAPTER].to_dict()
    for key in _CHECKED:
        mine, theirs = _comparable(current.get(key)), _comparable(saved_config.get(key))
        if mine != theirs:
            raise ValueError(f"{folder}: the saved adapter has {key}={theirs}, the model's has {mine}")
    params = {n: p for n, p in model.named_parameters() if ".lora_" in n}
    saved = {_param_name(k): v for k, v in load_file(folder / "adapter_model.safetensors").items()}
    if set(saved) != set(params):
        odd = sorted(set(saved) ^ set(params))
        raise ValueError(f"{folder}: the saved adapter does not fit the model ({len(odd)} names differ, e.g. {odd[0]})")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved[name])


def _comparable(value: Any) -> Any:
    return sorted(value) if isinstance(value, (list, set, tuple)) else value


def _param_name(key: str) -> str:
    """peft file name -> in-place parameter name: `….lora_A.weight` -> `….lora_A.default.weight`."""
    key = key.removeprefix(_PEFT_PREFIX)
    head, _, leaf = key.rpartition(".")
    return f"{head}.{ADAPTER}.{leaf}"
