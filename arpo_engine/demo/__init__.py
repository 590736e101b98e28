"""The demo task: questions about an invented world that need search, then arithmetic in Python.

No model knows the world's facts, so it must search; no 135M model does 6-digit arithmetic reliably,
so it must run Python. `generate(out_dir)` writes the corpus, train/eval prompts, SFT demonstrations in
both call formats, and the tool configs; `python -m arpo_engine.demo generate --out var/demo` does the
same from the shell.
"""

from arpo_engine.demo.build import DATA_SOURCE, INSTRUCTIONS, generate, tool_configs

__all__ = ["DATA_SOURCE", "INSTRUCTIONS", "generate", "tool_configs"]
