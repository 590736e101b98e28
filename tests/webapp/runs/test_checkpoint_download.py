"""Checkpoints of a run: listed with step, eval metrics, size, `latest` and `best`; downloaded as a streamed
ZIP archive that loads with transformers, holds no resume state and names no server path, reaches only
people who may see the run, and streams in constant memory whatever the folder's size.

The checkpoint folders are written by the engine's own CheckpointManager (tiny random model) and
recorded through the worker's recording service, as a run's actor and relay would.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp import factories as make
from webapp.accounts.models import Team
from webapp.runs import lifecycle, recording
from webapp.runs.archive import archive_files
from webapp.runs.models import Run

ROOT = Path(__file__).resolve().parents[3]
BIG = 300 * 2**20  # larger than the address space the streaming process is allowed (below)


def _record(run: Run, seq: int, step: int, folder: Path, metrics: dict[str, float]) -> None:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    event = {"seq": seq, "kind": "checkpoint", "step": step,
             "data": {"folder": str(folder), "size_bytes": size, "metrics": metrics}}  # fmt: skip
    recording.run_events_record(run_id=run.pk, events=[event])


@pytest.fixture
def trained(alice: User, lab: Team, tiny_model_dir: Path) -> Run:
    """A team run with two steps saved by the engine: step 1 evaluated best (0.5 > 0.25), step 2 latest."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arpo_engine.checkpoint import CheckpointManager

    run = lifecycle.run_launch(user=alice, run=make.run(alice, team=lab, name="trained"))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    optimizer = __import__("torch").optim.AdamW(model.parameters(), lr=1e-4)
    manager = CheckpointManager(run.checkpoint_dir(), str(run.pk), keep_last=3)
    for seq, (step, accuracy) in enumerate([(1, 0.5), (2, 0.25)], start=1):
        metrics = {"reward/mean": 0.1 * step, "eval/accuracy": accuracy}
        folder = manager.save(step, model, tokenizer, run_config=run.config, metrics=metrics, optimizer=optimizer,
                              best_metric=accuracy)  # fmt: skip
        _record(run, seq, step, folder, metrics)
    return run


def _zip(response: Any) -> zipfile.ZipFile:
    assert response.status_code == 200, getattr(response, "content", b"")[:300]
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    assert len(body) == int(response["Content-Length"])
    return zipfile.ZipFile(io.BytesIO(body))


def test_the_list_shows_each_step_with_its_eval_metrics_size_and_the_latest_and_best_aliases(
    trained: Run, api_for: Any, alice: User
) -> None:
    rows = api_for(alice).get(f"/api/v1/runs/{trained.pk}/checkpoints/").json()
    assert [(r["step"], r["latest"], r["best"], r["available"]) for r in rows] == [
        (1, False, True, True), (2, True, False, True),
    ]  # fmt: skip
    assert rows[0]["eval"] == {"eval/accuracy": 0.5} and rows[0]["metrics"]["reward/mean"] == pytest.approx(0.1)
    assert all(r["size_bytes"] > 100_000 for r in rows)  # the weights are in the folder
    assert rows[1]["download_url"] == f"/api/v1/runs/{trained.pk}/checkpoints/2/download"


def test_the_latest_download_extracts_and_loads_with_transformers_without_resume_state(
    trained: Run, api_for: Any, bob: User, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    archive = _zip(api_for(bob).get(f"/api/v1/runs/{trained.pk}/checkpoints/latest/download"))  # bob: a teammate
    names = archive.namelist()
    assert {n.split("/")[0] for n in names} == {f"run-{trained.pk}-step-2"}
    files = {n.split("/", 1)[1] for n in names}
    assert {"config.json", "model.safetensors", "tokenizer.json", "run.json", "README.md"} <= files
    resume = {"optimizer.json", "optimizer.safetensors", "rng.json", "rng.safetensors", "state.json", "COMPLETE.json"}
    assert not files & resume and not any("resume" in n for n in names)
    archive.extractall(tmp_path / "out")
    folder = tmp_path / "out" / f"run-{trained.pk}-step-2"
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2
    assert AutoTokenizer.from_pretrained(folder).chat_template
    assert json.loads((folder / "run.json").read_text())["step"] == 2


def test_no_file_in_the_download_names_a_path_of_the_server(
    trained: Run, api_for: Any, alice: User, settings: Any
) -> None:
    archive = _zip(api_for(alice).get(f"/api/v1/runs/{trained.pk}/checkpoints/best/download"))
    assert archive.namelist()[0].startswith(f"run-{trained.pk}-step-1/")  # best: the higher eval accuracy
    media = str(Path(settings.MEDIA_ROOT).resolve()).encode()
    root = str(ROOT).encode()
    for info in archive.infolist():
        assert not info.filename.startswith("/") and ".." not in info.filename
        data = archive.read(info)
        assert media not in data and root not in data, info.filename


def test_the_page_download_serves_a_step_by_number(trained: Run, alice: User) -> None:
    client = Client()
    client.force_login(alice)
    archive = _zip(client.get(f"/runs/{trained.pk}/checkpoints/1/download"))
    assert f"run-{trained.pk}-step-1/config.json" in archive.namelist()
    page = client.get(f"/runs/{trained.pk}/checkpoints/").content.decode()
    assert f"/runs/{trained.pk}/checkpoints/best/download" in page and "eval/accuracy" in page


def test_outsider_cannot_download_checkpoint(trained: Run, api_for: Any, charlie: User) -> None:
    for ref in ("latest", "best", "1"):
        response = api_for(charlie).get(f"/api/v1/runs/{trained.pk}/checkpoints/{ref}/download")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    client = Client()
    client.force_login(charlie)
    assert client.get(f"/runs/{trained.pk}/checkpoints/latest/download").status_code == 404


def test_a_pruned_or_unknown_step_is_not_found_with_a_reason(trained: Run, api_for: Any, alice: User) -> None:
    from arpo_engine.checkpoint_files import remove_dir

    remove_dir(trained.checkpoint_dir() / f"run-{trained.pk}" / "step-1")
    client = api_for(alice)
    rows = client.get(f"/api/v1/runs/{trained.pk}/checkpoints/").json()
    assert rows[0]["available"] is False and rows[0]["download_url"] is None
    response = client.get(f"/api/v1/runs/{trained.pk}/checkpoints/1/download")
    assert response.status_code == 404 and "pruned" in response.json()["message"]
    assert client.get(f"/api/v1/runs/{trained.pk}/checkpoints/9/download").status_code == 404
    assert client.get(f"/api/v1/runs/{trained.pk}/checkpoints/newest/download").status_code == 404


def test_resume_files_and_links_out_of_a_step_folder_are_never_archived(tmp_path: Path) -> None:
    folder = tmp_path / "step-3"
    (folder / "nested").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "nested" / "extra.txt").write_text("x")
    (folder / "optimizer.safetensors").write_bytes(b"secret")  # copied in by mistake: still not sent
    (folder / ".model.tmp-1234").write_text("torn")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("server file")
    (folder / "link.txt").symlink_to(outside / "private.txt")
    (folder / "linked").symlink_to(outside)
    assert [name for _, name in archive_files(folder)] == ["config.json", "nested/extra.txt"]


def _big_folder(root: Path) -> Path:
    folder = root / "step-1"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with (folder / "model.safetensors").open("wb") as f:
        f.truncate(BIG)  # sparse: 300 MB to read, no disk used
    return folder


STREAMER = textwrap.dedent(
    """
    import json, resource, sys, zlib
    from pathlib import Path

    folder, limit, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    from webapp.runs.archive import checkpoint_archive  # imported before the cap: the cap is for the streaming
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        if mode == "naive":  # the control: holding the file in memory must not fit under the cap
            data = (folder / "model.safetensors").read_bytes()
            print(json.dumps({"bytes": len(data)}))
            sys.exit(0)
        stream = checkpoint_archive(folder, "run-1-step-1")
        expected, sent, crc = len(stream), 0, 0
        for chunk in stream:
            sent += len(chunk)
            crc = zlib.crc32(chunk, crc)
    except MemoryError:
        print(json.dumps({"memory_error": True}))
        sys.exit(3)
    # VmHWM: this process's own peak (ru_maxrss would carry the forking test process's over the exec)
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    rss_mb = int(status.split()[0]) / 1024
    print(json.dumps({"bytes": sent, "expected": expected, "peak_rss_mb": rss_mb}))
    """
)


def _stream_capped(folder: Path, limit: int, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", STREAMER, str(folder), str(limit), mode],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_checkpoint_larger_than_the_memory_allowed_streams_completely(tmp_path: Path) -> None:
    folder = _big_folder(tmp_path)
    # The address space of the whole process (interpreter, zipstream, buffers) is capped below the file's
    # size: any copy of the file in memory fails, whatever the machine's load (the control shows it).
    limit = 200 * 2**20
    control = _stream_capped(folder, limit, "naive")
    assert control.returncode == 3 and "memory_error" in control.stdout, (control.stdout, control.stderr[-2000:])
    done = _stream_capped(folder, limit, "stream")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bytes"] == report["expected"] > BIG
    assert report["peak_rss_mb"] < 100, report
    print(f"\nstreamed {report['bytes'] / 2**20:.0f} MiB under a {limit // 2**20} MiB cap; "
          f"peak RSS {report['peak_rss_mb']:.0f} MiB")  # fmt: skip


def test_the_download_view_holds_a_small_constant_amount_of_memory_while_streaming(alice: User, api_for: Any) -> None:
    run = lifecycle.run_launch(user=alice, run=make.run(alice, name="big"))
    folder = _big_folder(run.checkpoint_dir() / f"run-{run.pk}")
    _record(run, 1, 1, folder, {})
    client = api_for(alice)
    # Python's own allocations from the request on, counted exactly: independent of the machine's load and
    # of what the test process loaded before (its RSS would be neither).
    tracemalloc.start()
    try:
        response = client.get(f"/api/v1/runs/{run.pk}/checkpoints/1/download")
        assert response.status_code == 200 and int(response["Content-Length"]) > BIG
        sent = sum(len(chunk) for chunk in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == int(response["Content-Length"])
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming {sent / 2**20:.0f} MiB"


def test_a_checkpoint_recorded_outside_the_media_root_is_listed_but_never_served(
    alice: User, api_for: Any, tmp_path: Path
) -> None:
    run = lifecycle.run_launch(user=alice, run=make.run(alice, name="elsewhere"))
    outside = tmp_path / "elsewhere" / "step-1"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text("{}")
    _record(run, 1, 1, outside, {})
    client = api_for(alice)
    (row,) = client.get(f"/api/v1/runs/{run.pk}/checkpoints/").json()
    assert row["available"] is False and row["latest"] is False
    assert client.get(f"/api/v1/runs/{run.pk}/checkpoints/1/download").status_code == 404
