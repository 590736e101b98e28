"""A checkpoint step folder as a streamed ZIP archive: constant memory whatever the folder's size.

The archive is built by zipstream-ng: files are read in small chunks as the response is sent, stored
without compression (safetensors weights do not compress), and the archive's exact size is known up
front (`len(stream)`), so the download has a Content-Length and clients can show progress.

Only what `arpo_engine.checkpoint_download` puts in a step folder is sent: regular files, by their name
under `run-<id>/step-<N>/`. Resume state (optimizer, RNG, data position, LoRA adapter for resuming) lives
in a sibling folder and is never walked; files with its names are refused even if one were copied into
a step folder. No symlink is followed, so nothing outside the step folder can be reached through one.

No Django here: the memory test runs this module in a process with a capped address space.
"""

from __future__ import annotations

import re
from pathlib import Path

from zipstream import ZIP_STORED, ZipStream

# Files of the engine's resume folder (arpo_engine/checkpoint.py): never part of a download.
RESUME_FILES = re.compile(
    r"^(optimizer\.(json|safetensors)|rng\.(json|safetensors)|state\.json|COMPLETE\.json"
    r"|adapter_(config\.json|model\.safetensors))$"
)


def archive_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, name in the archive) for each file of a step folder, sorted; no resume state, no symlink."""
    found: list[tuple[Path, str]] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "resume" for part in relative.parts):
            continue  # hidden temp files of an interrupted save, and any resume folder
        if path.is_symlink() or not path.is_file() or RESUME_FILES.match(path.name):
            continue
        if any(parent.is_symlink() for parent in path.parents if folder in parent.parents):
            continue
        found.append((path, relative.as_posix()))
    return found


def checkpoint_archive(folder: Path, top: str) -> ZipStream:
    """The step folder as a sized, uncompressed ZIP stream; every name starts with `top/`."""
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)
    for path, name in archive_files(folder):
        stream.add_path(str(path), f"{top}/{name}", recurse=False)
    return stream
