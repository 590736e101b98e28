"""The actor bodies are plain objects around the engine's own: driven here without Ray."""

from __future__ import annotations

from pathlib import Path

from arpo_engine.distributed.actors import LearnerWorker
from tests.test_sft_progress import _config


def test_the_learners_cold_start_keeps_its_log_and_progress_for_the_driver_to_read(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = _config(tmp_path, tiny_model_dir)
    worker = LearnerWorker(config.to_dict(), "1")
    out = tmp_path / "ckpt" / "run-1" / "sft-model"
    assert worker.cold_start(str(out)) == str(out)

    notes = worker.notes(0)
    assert any(kind == "log" and value.startswith("SFT on 3 demonstrations") for kind, value in notes)
    assert [value[0] for kind, value in notes if kind == "sft"] == [1, 2, 3]
    assert worker.notes(len(notes)) == []
    assert (out / "config.json").is_file()

    assert worker.load(str(out), str(out), resume_step=None, version=0) == {"rollout_rng": None, "data_position": None}
    published = worker.publish()
    assert published.version == 0 and len(published) > 0
