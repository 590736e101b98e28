"""A per-request upload cap: a file over ARPO_UPLOAD_MAX_BYTES is skipped while it streams in.

Django would otherwise spool any size to disk before our code sees it. The handler goes first in the
request's handler list (before anything reads the body); an over-size file is dropped, the request is
marked, and the view answers with a clear message.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

TOO_LARGE_ATTR = "arpo_upload_too_large"


class CappedUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.max_bytes:
            setattr(self.request, TOO_LARGE_ATTR, self.file_name or True)
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> Any:
        return None  # the next handler (memory or temporary file) builds the UploadedFile


def install_upload_cap(request: HttpRequest) -> None:
    """Put the cap first; must run before the request body is read."""
    handler = CappedUploadHandler(request, settings.ARPO_UPLOAD_MAX_BYTES)
    request.upload_handlers = [handler, *request.upload_handlers]


def too_large_message(request: HttpRequest) -> str | None:
    name = getattr(request, TOO_LARGE_ATTR, None)
    if not name:
        return None
    limit = settings.ARPO_UPLOAD_MAX_BYTES
    size = f"{limit / 1024 / 1024:.1f} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    what = f"{name}: the file" if isinstance(name, str) else "The file"
    return f"{what} is over the {size} upload limit."
