"""ARPO engine: agentic rollouts with entropy-based adaptive branching, and (soon) training.

`arpo_engine.config` imports with the standard library alone; everything else may need torch.
"""

__version__ = "0.1.0"
