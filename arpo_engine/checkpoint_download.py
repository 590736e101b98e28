"""The downloadable folder of a checkpoint step: a plain Hugging Face model plus run.json and a model card.

PRODUCT.md ("Checkpoint download"): the folder loads with plain `transformers` and vLLM, LoRA adapters
merged in; `run.json` holds the resolved run config and metrics (NaN becomes null, so it is valid JSON
for the web app); README.md is a model card with the metrics and how to load the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from arpo_engine import lora
from arpo_engine.checkpoint_files import write_json

_CARD_METRICS = (
    "eval/accuracy", "eval/reward_mean", "accuracy", "reward/mean", "tools/calls_per_traj",
    "entropy/token_mean", "branch/fork_rate", "response/len_mean",
)  # fmt: skip


def write_download(
    out: Path, model: torch.nn.Module, tokenizer: Any, info: dict[str, Any], agent: Mapping[str, Any] | None = None
) -> None:
    plain = model.get_base_model() if is_peft(model) else model  # type: ignore[operator]
    # LoRA adapters (a PeftModel's or injected ones) are merged into a copy of the weights under the
    # plain names, so the folder loads without peft and the training model continues bit for bit.
    state = lora.merged_state_dict(plain) if lora.has_lora(plain) else None
    plain.save_pretrained(out, state_dict=state)  # type: ignore[operator]
    if not (out / "generation_config.json").is_file():
        from transformers import GenerationConfig

        GenerationConfig.from_model_config(plain.config).save_pretrained(out)  # type: ignore[arg-type]
    tokenizer.save_pretrained(out)
    template = tokenizer.chat_template
    if isinstance(template, dict):  # several named templates: vLLM and transformers default to "default"
        template = template.get("default")
    if isinstance(template, str) and not (out / "chat_template.jinja").is_file():
        (out / "chat_template.jinja").write_text(template)
    write_json(out / "run.json", info)
    if agent is not None:
        write_json(out / "agent.json", dict(agent))
    (out / "README.md").write_text(_model_card(info, agent))
    # safetensors writes private files; the folder is served as a download by another process.
    for f in out.iterdir():
        f.chmod(0o644)


def is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def run_info(
    run_id: str, step: int, config: dict[str, Any], metrics: Mapping[str, Any], best_metric: float | None
) -> dict[str, Any]:
    """run.json: names, never paths of this machine (the folder is downloaded): the base model by its
    name, and the config's absolute paths cut to their last part."""
    from arpo_engine.agent_spec import portable
    from arpo_engine.models import base_model_name

    path = config.get("model", {}).get("path", "")
    return {
        "run_id": run_id,
        "step": step,
        "base_model": base_model_name(str(path)) if path else "",
        "algorithm": _algorithm_name(config),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": {k: _json_number(v) for k, v in metrics.items()},
        "best_metric": _json_number(best_metric),
        "run_config": portable(config),
    }


def _algorithm_name(config: Mapping[str, Any]) -> str:
    b, a = config.get("branching", {}), config.get("algorithm", {})
    if not b.get("enabled", True):
        return "GRPO"
    aepo = b.get("consecutive_penalty") or b.get("dynamic_budget")
    return "AEPO" if aepo or a.get("entropy_balanced_clip") or a.get("entropy_aware_advantage") else "ARPO"


def _json_number(value: Any) -> Any:
    # run.json is read by the web app; bare NaN/Infinity are not JSON, so they become null.
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _model_card(info: dict[str, Any], agent: Mapping[str, Any] | None = None) -> str:
    base, step, algo = info["base_model"] or "unknown", info["step"], info["algorithm"]
    metrics = info["metrics"]
    shown = [k for k in _CARD_METRICS if k in metrics] or sorted(metrics)[:10]
    rows = "\n".join(f"| `{k}` | {metrics[k]} |" for k in shown)
    table = f"| metric | value |\n|---|---|\n{rows}\n" if rows else "No metrics were recorded.\n"
    total = info["run_config"].get("train", {}).get("steps", "?")
    folder = f"path/to/step-{step}"
    return f"""---
base_model: {json.dumps(str(base))}
library_name: transformers
tags: [arpo, reinforcement-learning, tool-use, agent]
---

# {info["run_config"].get("name", "run")}, step {step}

Fine-tuned from `{base}` with {algo} (Agentic Reinforced Policy Optimization, arXiv 2507.19849) in
ARPO Studio: run `{info["run_id"]}`, step {step} of {total}, saved {info["created"]}.

{table}
`run.json` holds the full resolved run config, so the run can be reproduced.

## Load

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{folder}")
tokenizer = AutoTokenizer.from_pretrained("{folder}")
```

```python
from vllm import LLM, SamplingParams

llm = LLM(model="{folder}")
out = llm.chat([{{"role": "user", "content": "What is 17 * 23?"}}], SamplingParams(max_tokens=512))
print(out[0].outputs[0].text)
```
{_agent_section(folder, agent)}"""


def _agent_section(folder: str, agent: Mapping[str, Any] | None) -> str:
    if agent is None:
        return ""
    tools = ", ".join(f"`{t['name']}` ({t['kind']})" for t in agent.get("tools", [])) or "none"
    stops = ", ".join(f"`{s}`" for s in agent.get("stop_sequences", [])) or "none"
    limits = agent.get("limits", {})
    return f"""
## Run it as an agent

The model was trained as a tool-using agent: it answers well with the system prompt and tool protocol
it was trained with, which `agent.json` holds (system prompt, tool schemas, call format, stop sequences,
limits). Loaded with a plain chat template and no tools it does not behave as the agent it became.

- call format: `{agent.get("call_format", {}).get("name")}`; tools: {tools}
- generation stops at: {stops}; then run the tool and append its result wrapped as `agent.json`'s
  `call_format.result_before` + output + `result_after`, and continue
- at most {limits.get("max_tool_calls")} tool calls and {limits.get("max_response_tokens")} response tokens

With ARPO Studio's engine installed, one command runs the agent loop with its tools (python sandboxed):

```bash
python -m arpo_engine agent {folder} "What is 17 * 23?"
```
"""
