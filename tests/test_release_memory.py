"""The learner hands memory freed by an update back to the OS (arpo_engine.device.release_freed_memory)."""

from __future__ import annotations

import re
from pathlib import Path

from arpo_engine import device, learner
from tests.toy import small_llama, toy_batch

MB = 1 << 20


def rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore[union-attr]


def test_freed_heap_pages_go_back_to_the_os():
    blocks = [bytearray(100_000) for _ in range(2000)]  # 200 MB under glibc's mmap threshold: on the heap
    keep = bytearray(100_000)  # allocated above them, so the heap cannot simply shrink from its top
    del blocks
    before = rss()
    assert device.release_freed_memory()
    assert rss() < before - 100 * MB
    del keep


def test_a_cpu_update_releases_what_it_freed(monkeypatch):
    from arpo_engine.config import AlgorithmConfig, OptimConfig

    calls: list[int] = []
    monkeypatch.setattr(learner, "release_freed_memory", lambda: calls.append(1) or True)
    trainer = learner.Learner(small_llama(), optim=OptimConfig(lr=1e-3, mini_batch_prompts=1, device="cpu"),
                              algorithm=AlgorithmConfig(), pad_token_id=0)  # fmt: skip
    trainer.update(toy_batch())
    assert calls == [1]
