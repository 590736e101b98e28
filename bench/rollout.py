"""Rollout benchmark (issue: engine I). Run with `make bench` or `.venv/bin/python bench/rollout.py`.

Side by side in one process, one vLLM engine, the same prompts and seed:
1. the agent loop's generation speed vs plain `vllm` generate of exactly the same token counts
   (each path's own model tokens, ignore_eos); tool time reported apart is the time the loop waited
   on tools with nothing to decode (calls that overlap decoding cost nothing there);
2. GRPO (N = M, no branching) vs ARPO (N < M, entropy branching) at equal M, on two workloads: the
   demo task (up to 3 calls) and short single-call trajectories (the same prompts, call limit 1): tokens
   generated, tokens prefilled (all context vs context not yet in the prefix cache), tool calls, wall
   time; ARPO also in the algorithm's literal order (supplements once every other path has ended,
   decisions at segment ends) and with each start as soon as it is certain but nothing sent ahead
   (`run_rollouts(schedule=...)`), which all sample the same trees;
3. sandboxed Python call latency p50/p99.
`--sections` picks some (default all); a partial run keeps the other sections' results in the JSON.
The vLLM KV cache is sized for the prompts of one call (`arpo_engine.memory.kv_cache_bytes`).
Prints a markdown report and writes JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


WORKLOADS = {"demo": 3, "single-call": 1}
"""Workload name -> rollout.max_tool_calls, on the same prompts."""
ARMS = (("GRPO", False, "ahead"), ("ARPO, literal", True, "literal"), ("ARPO, eager", True, "eager"),
        ("ARPO", True, "ahead"))  # fmt: skip
"""(name, branching, schedule): ARPO's default schedule sends likely requests ahead (rollout/speculation.py)."""


def _config(base: Any, *, branching: bool, group_size: int, initial: int, calls: int | None = None) -> Any:
    from arpo_engine.config import RunConfig

    raw = base.to_dict()
    raw["rollout"]["group_size"] = group_size
    raw["rollout"]["initial_samples"] = initial if branching else group_size
    if calls is not None:
        raw["rollout"]["max_tool_calls"] = calls
    raw["branching"]["enabled"] = branching
    return RunConfig.from_dict(raw).validate()


def _loop(samples: list[Any], config: Any, sampler: Any, tools: Any, seed: int, *, schedule: str = "ahead") -> Any:
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
    from arpo_engine.rollout.formats import get_format

    deps = RolloutDeps(sampler, tools, get_format(config.rollout.call_format), random.Random(seed))
    started = time.perf_counter()
    batch = run_rollouts(samples, config, deps, schedule=schedule)  # type: ignore[arg-type]
    return batch, time.perf_counter() - started


def _plain_generate(sampler: Any, batch: Any, logprobs: int, *, with_tool_tokens: bool = False) -> tuple[int, float]:
    """vLLM generate, from each path's prompt, of as many tokens as that path's model generated (ignore_eos).

    With `with_tool_tokens`, of the path's whole response length instead: model tokens plus the tool-result
    tokens the loop had to prefill, i.e. the same total sequence length as the loop produced.
    """
    from vllm import SamplingParams, TokensPrompt

    prompts, params = [], []
    for group in batch.groups:
        for path in group.paths:
            start = path.fork_boundary or 0
            own = len(path.mask) - start if with_tool_tokens else sum(path.mask[start:])
            if own:
                prompts.append(TokensPrompt(prompt_token_ids=group.prompt_ids))
                params.append(
                    SamplingParams(
                        max_tokens=own, ignore_eos=True, temperature=1.0, logprobs=logprobs, seed=len(params)
                    )
                )
    started = time.perf_counter()
    outs = sampler.llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    return sum(len(o.outputs[0].token_ids) for o in outs), elapsed


def _prefill_rate(sampler: Any, vocab: int, rows: int = 16, length: int = 512) -> float:
    """Prefill tokens/s of this engine: `rows` distinct random contexts, one generated token each."""
    import random as _random

    from vllm import SamplingParams, TokensPrompt

    rng = _random.Random(0)
    prompts = [TokensPrompt(prompt_token_ids=[rng.randrange(100, vocab) for _ in range(length)]) for _ in range(rows)]
    params = SamplingParams(max_tokens=1, temperature=1.0)
    sampler.llm.reset_prefix_cache()
    started = time.perf_counter()
    sampler.llm.generate(prompts, params, use_tqdm=False)
    return rows * length / (time.perf_counter() - started)


def _own_tool_tokens(batch: Any) -> int:
    """Tool-result tokens each path's own segments appended (the loop prefills them; plain generate never sees them)."""
    return sum(
        len(p.mask) - (p.fork_boundary or 0) - sum(p.mask[p.fork_boundary or 0 :])
        for g in batch.groups
        for p in g.paths
    )


def _own_total_tokens(batch: Any) -> int:
    """Response tokens each path added itself (model and tool results), forks counted from their boundary."""
    return sum(len(p.mask) - (p.fork_boundary or 0) for g in batch.groups for p in g.paths)


def _row(name: str, m: dict[str, float], wall: float) -> dict[str, float | str]:
    return {
        "config": name,
        "paths": m["rollout/paths"],
        "tool_calls": m["tools/calls_total"],
        "tool_calls_per_traj": m["tools/calls_per_traj"],
        "forks": m["branch/forks"],
        "supplements": m["branch/supplements"],
        "tokens_generated": m["rollout/tokens_generated"],
        "tokens_prefilled_all": m["rollout/tokens_prefilled"],
        "tokens_prefilled_uncached": m["rollout/tokens_prefilled_uncached"],
        "rounds": m["rollout/rounds"],
        "sampler_steps": m["rollout/sampler_steps"],
        "ahead_sent": m.get("rollout/ahead_sent", 0.0),
        "ahead_discarded": m.get("rollout/ahead_discarded", 0.0),
        "ahead_discarded_tokens": m.get("rollout/ahead_discarded_tokens", 0.0),
        "wall_s": wall,
        "tool_s": m["time/tools_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo_rollout.yaml"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--initial", type=int, default=4, help="ARPO's N")
    parser.add_argument("--seeds", type=int, default=2, help="repeat GRPO vs ARPO over this many seeds")
    parser.add_argument("--sections", default="loop,arpo,sandbox", help="comma-separated: loop, arpo, sandbox")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    parser.add_argument("--arms", default=",".join(name for name, _, _ in ARMS), help="which configurations to run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_rollout.json"))
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    from sandbox import measure_sandbox_latency

    from arpo_engine.config import RunConfig, load_config
    from arpo_engine.data import load_samples
    from arpo_engine.memory import kv_cache_bytes
    from arpo_engine.rollout.factory import make_sampler
    from arpo_engine.tools.registry import build_tools

    base = load_config(args.config)
    raw = base.to_dict()
    raw["optim"]["train_batch_prompts"] = args.prompts
    raw["rollout"]["group_size"] = args.group_size
    sized = RunConfig.from_dict(raw).validate()
    samples = load_samples(base.data.train_path)[: args.prompts]
    tools = build_tools(base.tools)
    t0 = time.perf_counter()
    sampler = make_sampler(base.model, base.rollout, seed=base.seed, kv_cache_bytes=kv_cache_bytes(sized))
    startup = time.perf_counter() - t0
    model = Path(base.model.path).resolve()
    shown = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else base.model.path
    out = Path(args.out)
    report: dict[str, Any] = (
        json.loads(out.read_text()) if out.is_file() and sections != {"loop", "arpo", "sandbox"} else {}
    )
    report.update({"model": shown, "prompts": args.prompts, "M": args.group_size,
                   "N_arpo": args.initial, "vllm_startup_s": startup})  # fmt: skip
    try:
        grpo = _config(base, branching=False, group_size=args.group_size, initial=args.initial)
        _loop(samples[:1], grpo, sampler, tools, seed=99)  # warm-up: compile paths, fill caches
        if "loop" in sections:
            _loop_vs_plain(report, samples, grpo, sampler, tools, base)
        if "arpo" in sections:
            report["grpo_vs_arpo"] = _grpo_vs_arpo(args, base, samples, sampler, tools)
        if "loop" in sections:
            # last, because it empties the prefix cache: how much of the loop's time is tool-result prefill
            lv = report["loop_vs_plain"]
            lv["prefill_tok_s"] = _prefill_rate(sampler, sampler.vocab_size)
            lv["tool_prefill_s_estimate"] = lv["tool_result_tokens"] / lv["prefill_tok_s"]
            without = lv["loop_wall_s"] - lv["loop_tool_s"] - lv["tool_prefill_s_estimate"]
            lv["ratio_excl_tool_prefill"] = (lv["loop_tokens"] / without) / lv["plain_tok_s"]
    finally:
        sampler.close()

    if "sandbox" in sections:
        report["sandbox"] = measure_sandbox_latency(100)
    out.write_text(json.dumps(report, indent=1))
    print(render(report))
    print(f"\nJSON written to {args.out}")
    return 0


def _grpo_vs_arpo(args: Any, base: Any, samples: list[Any], sampler: Any, tools: Any) -> list[dict[str, Any]]:
    """Each workload: GRPO, ARPO in the literal order and ARPO, over seeds, the order of the arms reversed
    every other seed (the machine's load drifts). Besides wall time, the CPU time of this process and the
    tool processes: under other work's load it inflates far less than wall time does."""
    rows = []
    for seed in range(args.seeds):
        for workload in args.workloads.split(","):
            arms = [arm for arm in ARMS if arm[0] in args.arms.split(",")]
            for name, branching, schedule in arms if seed % 2 == 0 else arms[::-1]:
                cfg = _config(base, branching=branching, group_size=args.group_size, initial=args.initial,
                              calls=WORKLOADS[workload])  # fmt: skip
                load, cpu = os.getloadavg()[0], _cpu_seconds()
                batch, wall = _loop(samples, cfg, sampler, tools, seed=seed, schedule=schedule)
                row = _row(name, batch.metrics, wall)
                row.update(
                    seed=seed, workload=workload, load=(load + os.getloadavg()[0]) / 2, cpu_s=_cpu_seconds() - cpu
                )
                rows.append(row)
                print(f"{workload} {name} seed {seed}: {wall:.1f} s wall, {row['cpu_s']:.1f} s CPU, "
                      f"{row['sampler_steps']:.0f} engine steps, load {row['load']:.1f}", flush=True)  # fmt: skip
    return rows


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _loop_vs_plain(report: dict[str, Any], samples: list[Any], grpo: Any, sampler: Any, tools: Any, base: Any) -> None:
    """1. The loop vs plain generate of the same token counts (on the GRPO batch)."""
    batch, wall = _loop(samples, grpo, sampler, tools, seed=0)
    m = batch.metrics
    model_s = wall - m["time/tools_s"]
    plain_tokens, plain_s = _plain_generate(sampler, batch, base.rollout.entropy_top_k)
    total_tokens, total_s = _plain_generate(sampler, batch, base.rollout.entropy_top_k, with_tool_tokens=True)
    loop_total = _own_total_tokens(batch)
    report["loop_vs_plain"] = {
        "loop_tokens": m["rollout/tokens_generated"],
        "loop_wall_s": wall,
        "loop_tool_s": m["time/tools_s"],
        "loop_tok_s_excl_tools": m["rollout/tokens_generated"] / model_s,
        "loop_tok_s_incl_tools": m["rollout/tokens_generated"] / wall,
        "plain_tokens": plain_tokens,
        "plain_s": plain_s,
        "plain_tok_s": plain_tokens / plain_s,
        "ratio_excl_tools": (m["rollout/tokens_generated"] / model_s) / (plain_tokens / plain_s),
        "loop_total_tokens": loop_total,
        "plain_total_tokens": total_tokens,
        "plain_total_s": total_s,
        "ratio_same_total_length": (loop_total / model_s) / (total_tokens / total_s),
        "tool_result_tokens": _own_tool_tokens(batch),
        "rounds": m["rollout/rounds"],
        "sampler_steps": m["rollout/sampler_steps"],
    }


def render(r: dict[str, Any]) -> str:
    lines = [
        f"model {r['model']}, {r['prompts']} prompts, M={r['M']}, ARPO N={r['N_arpo']}; vLLM start-up {r['vllm_startup_s']:.0f} s",
    ]
    if "loop_vs_plain" in r:
        lines += ["", *_render_loop(r["loop_vs_plain"])]
    if "grpo_vs_arpo" in r:
        lines += ["", *_render_arms(r["grpo_vs_arpo"])]
    if "sandbox" in r:
        s = r["sandbox"]
        lines += [
            "",
            f"sandboxed python call (print(1)), 100 calls: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, mean {s['mean_ms']:.1f} ms",
        ]
    return "\n".join(lines)


def _render_loop(lv: dict[str, Any]) -> list[str]:
    return [
        "| | tokens | seconds | tok/s |",
        "|---|---|---|---|",
        f"| agent loop, excl. idle wait on tools | {lv['loop_tokens']:.0f} | {lv['loop_wall_s'] - lv['loop_tool_s']:.1f} | {lv['loop_tok_s_excl_tools']:.0f} |",
        f"| agent loop, incl. idle wait on tools ({lv['loop_tool_s']:.1f} s) | {lv['loop_tokens']:.0f} | {lv['loop_wall_s']:.1f} | {lv['loop_tok_s_incl_tools']:.0f} |",
        f"| plain vLLM generate, same lengths | {lv['plain_tokens']:.0f} | {lv['plain_s']:.1f} | {lv['plain_tok_s']:.0f} |",
        f"| **ratio loop / plain (excl. tools)** | | | **{lv['ratio_excl_tools']:.2f}×** |",
        "",
        "Same total length: the loop's response tokens including tool results vs plain generate of that many tokens.",
        "",
        "| | response tokens | seconds | tok/s |",
        "|---|---|---|---|",
        f"| agent loop (model + tool-result tokens), excl. idle wait on tools | {lv['loop_total_tokens']:.0f} | {lv['loop_wall_s'] - lv['loop_tool_s']:.1f} | {lv['loop_total_tokens'] / (lv['loop_wall_s'] - lv['loop_tool_s']):.0f} |",
        f"| plain vLLM generate, same total lengths | {lv['plain_total_tokens']:.0f} | {lv['plain_total_s']:.1f} | {lv['plain_total_tokens'] / lv['plain_total_s']:.0f} |",
        f"| **ratio loop / plain (same total length)** | | | **{lv['ratio_same_total_length']:.2f}×** |",
        "",
        f"Tool-result tokens the loop prefilled: {lv['tool_result_tokens']:.0f}; this engine prefills "
        f"{lv['prefill_tok_s']:.0f} tok/s (16 distinct 512-token contexts), so about "
        f"{lv['tool_prefill_s_estimate']:.1f} s of the loop is that prefill. Without it the loop would run at "
        f"**{lv['ratio_excl_tool_prefill']:.2f}×** plain generate.",
        "",
        f"rounds (longest chain of dependent segments): {lv['rounds']:.0f}; sampler steps: {lv.get('sampler_steps', 0):.0f}",
    ]


def _render_arms(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| workload | config | seed | paths | tool calls | calls/traj | forks | supplements | generated | prefilled (all) | prefilled (uncached) | rounds | sent ahead (discarded) | engine steps | load | CPU s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.get('workload', 'demo')} | {row['config']} | {row['seed']} | {row['paths']:.0f} | {row['tool_calls']:.0f} | "
            f"{row['tool_calls_per_traj']:.2f} | {row['forks']:.0f} | {row['supplements']:.0f} | {row['tokens_generated']:.0f} | "
            f"{row['tokens_prefilled_all']:.0f} | {row['tokens_prefilled_uncached']:.0f} | {row['rounds']:.0f} | "
            f"{row.get('ahead_sent', 0):.0f} ({row.get('ahead_discarded', 0):.0f}) | "
            f"{row.get('sampler_steps', 0):.0f} | {row.get('load', 0):.1f} | {row.get('cpu_s', 0):.1f} | {row['wall_s']:.1f} |"
        )
    for workload in dict.fromkeys(row.get("workload", "demo") for row in rows):
        mine = [x for x in rows if x.get("workload", "demo") == workload]

        def mean(name: str, key: str, mine: list[dict[str, Any]] = mine) -> float:
            values = [float(x[key]) for x in mine if x["config"] == name]
            return statistics.fmean(values) if values else float("nan")

        lines.append("")
        lines.append(
            f"{workload}, ARPO / GRPO (mean over seeds): tool calls {mean('ARPO', 'tool_calls') / mean('GRPO', 'tool_calls'):.2f}×, "
            f"generated tokens {mean('ARPO', 'tokens_generated') / mean('GRPO', 'tokens_generated'):.2f}×, "
            f"uncached prefill {mean('ARPO', 'tokens_prefilled_uncached') / mean('GRPO', 'tokens_prefilled_uncached'):.2f}×, "
            f"engine steps {mean('ARPO', 'sampler_steps') / mean('GRPO', 'sampler_steps'):.2f}×, "
            f"CPU time {mean('ARPO', 'cpu_s') / mean('GRPO', 'cpu_s'):.2f}×, "
            f"**wall time {mean('ARPO', 'wall_s') / mean('GRPO', 'wall_s'):.2f}×**; "
            f"literal: engine steps {mean('ARPO, literal', 'sampler_steps') / mean('GRPO', 'sampler_steps'):.2f}×, "
            f"wall time {mean('ARPO, literal', 'wall_s') / mean('GRPO', 'wall_s'):.2f}×; "
            f"eager: engine steps {mean('ARPO, eager', 'sampler_steps') / mean('GRPO', 'sampler_steps'):.2f}×, "
            f"wall time {mean('ARPO, eager', 'wall_s') / mean('GRPO', 'wall_s'):.2f}×"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
