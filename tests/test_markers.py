"""The `gpu` marker: tests that need CUDA are deselected on machines without it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_gpu_tests_are_deselected_without_cuda_and_run_with_it(pytester: pytest.Pytester) -> None:
    import torch

    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    gpu: needs CUDA\n")
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.gpu\n"
        "def test_on_the_gpu():\n    pass\n"
        "def test_anywhere():\n    pass\n"
    )
    result = pytester.runpytest_inprocess("--strict-markers", "-p", "no:cacheprovider", "-p", "no:django")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, deselected=1)
