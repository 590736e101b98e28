"""REST API of a run's checkpoints: the list (step, metrics, size, `latest`/`best`) and the streamed download
of one step as a ZIP archive (`/api/v1/runs/<id>/checkpoints/<step|latest|best>/download`)."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer

from . import checkpoints, selectors
from .checkpoints import CheckpointRow

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such run or checkpoint, or not yours to see.")


class CheckpointSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    seq = serializers.IntegerField(source="checkpoint.seq", help_text="The checkpoint-saved event's sequence number.")
    metrics = serializers.DictField(source="checkpoint.metrics", help_text="Metrics of the step it was saved at.")
    eval = serializers.DictField(source="eval_metrics", help_text="The `eval/…` metrics among them, if it evaluated.")
    size_bytes = serializers.IntegerField(source="checkpoint.size_bytes")
    created_at = serializers.DateTimeField(source="checkpoint.created_at")
    available = serializers.BooleanField(help_text="False once the engine pruned the step's files.")
    latest = serializers.BooleanField(help_text="The newest saved step (`latest`).")
    best = serializers.BooleanField(help_text="The step with the highest eval/accuracy (`best`).")
    download_url = serializers.SerializerMethodField(help_text="The streamed ZIP archive; null once pruned.")

    def get_download_url(self, row: CheckpointRow) -> str | None:
        if not row.available:
            return None
        run_id = row.checkpoint.run_id
        return reverse("api-run-checkpoint-download", kwargs={"pk": run_id, "ref": str(row.step)})


class RunCheckpoints(APIView):
    @extend_schema(responses={200: CheckpointSerializer(many=True), 404: _NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        return Response(CheckpointSerializer(checkpoints.checkpoint_rows(run=run), many=True).data)


def streamed_archive(stream: Any, filename: str) -> StreamingHttpResponse:
    """A ZIP stream as a download; its size is known, so clients can show progress."""
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Length"] = str(len(stream))
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class RunCheckpointDownload(APIView):
    @extend_schema(
        summary="Download a checkpoint (a step number, `latest` or `best`) as a streamed ZIP archive.",
        description="A plain Hugging Face folder (weights, tokenizer, chat template, run.json, agent.json, model "
        "card) under `run-<id>-step-<N>/`; resume state is never part of it.",
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: _NOT_FOUND},
    )
    def get(self, request: Request, pk: int, ref: str) -> StreamingHttpResponse:
        run = selectors.run_get(user=request.user, run_id=pk)
        return streamed_archive(*checkpoints.checkpoint_download(run=run, ref=ref))
