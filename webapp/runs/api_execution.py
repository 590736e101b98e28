"""REST API of a run's execution: launch, cancel, resume; its state, events, metrics, rollout trees and
checkpoints (api_checkpoints.py). Mounted with the other run routes under /api/v1/runs/<id>/.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer
from webapp.core.errors import DomainError

from . import lifecycle, selectors
from .models import MetricPoint, RolloutTree, Run, RunEvent

_ERRORS = {
    404: OpenApiResponse(ErrorSerializer, description="No such run, or not yours to see."),
    409: OpenApiResponse(ErrorSerializer, description="The run is not in a state that allows this."),
}


class RunStateSerializer(serializers.ModelSerializer):
    queue_position = serializers.SerializerMethodField(help_text="1 = next to start; null unless queued.")

    class Meta:
        model = Run
        fields = [
            "id", "status", "status_reason", "phase", "steps_done", "last_seq", "queue_position", "attempts",
            "launched_at", "started_at", "finished_at", "wall_seconds", "cpu_seconds", "gpu_seconds",
        ]  # fmt: skip
        read_only_fields = fields

    def get_queue_position(self, run: Run) -> int | None:
        return selectors.queue_position(run)


class RunEventSerializer(serializers.ModelSerializer):
    data = serializers.DictField()

    class Meta:
        model = RunEvent
        fields = ["seq", "kind", "step", "data", "private", "emitted_at", "recorded_at"]
        read_only_fields = fields


class MetricPointSerializer(serializers.ModelSerializer):
    values = serializers.DictField(child=serializers.FloatField())

    class Meta:
        model = MetricPoint
        fields = ["step", "seq", "values"]
        read_only_fields = fields


class RolloutTreeSerializer(serializers.ModelSerializer):
    data = serializers.DictField()

    class Meta:
        model = RolloutTree
        fields = ["step", "prompt_index", "seq", "reward_mean", "size_bytes", "data"]
        read_only_fields = fields


def _run(request: Request, pk: int) -> Run:
    return selectors.run_get(user=request.user, run_id=pk)


class _Action(APIView):
    transition: Any = None  # not `action`: DRF and drf-spectacular read that name as a ViewSet action

    def post(self, request: Request, pk: int) -> Response:
        run = type(self).transition(user=request.user, run=_run(request, pk))
        return Response(RunStateSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(request=None, responses={202: RunStateSerializer, **_ERRORS}, summary="Launch a draft: it is queued.")
class RunLaunch(_Action):
    transition = staticmethod(lifecycle.run_launch)


@extend_schema(request=None, responses={202: RunStateSerializer, **_ERRORS},
               summary="Cancel: the engine stops between phases; the last checkpoint is kept.")  # fmt: skip
class RunCancel(_Action):
    transition = staticmethod(lifecycle.run_cancel)


@extend_schema(request=None, responses={202: RunStateSerializer, **_ERRORS},
               summary="Resume a cancelled or failed run from its last checkpoint.")  # fmt: skip
class RunResume(_Action):
    transition = staticmethod(lifecycle.run_resume)


class RunState(APIView):
    @extend_schema(responses={200: RunStateSerializer, 404: _ERRORS[404]})
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunStateSerializer(_run(request, pk)).data)


def _int(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise DomainError(f"{name} must be a whole number.", fields={name: ["A whole number."]}) from None


class RunEvents(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Only events with a larger seq (resume a stream)."),
            OpenApiParameter("limit", int, description="At most this many (default 500, at most 5000)."),
        ],
        responses={200: RunEventSerializer(many=True), 404: _ERRORS[404]},
    )
    def get(self, request: Request, pk: int) -> Response:
        run = _run(request, pk)
        events = selectors.run_events(
            user=request.user, run=run, after=_int(request, "after", 0) or 0, limit=_int(request, "limit", 500) or 500
        )
        return Response(RunEventSerializer(events, many=True).data)


class RunMetrics(APIView):
    @extend_schema(responses={200: MetricPointSerializer(many=True), 404: _ERRORS[404]})
    def get(self, request: Request, pk: int) -> Response:
        return Response(MetricPointSerializer(selectors.metric_points(run=_run(request, pk)), many=True).data)


class RunRollouts(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("step", int, description="Only this step's trees.")],
        responses={200: RolloutTreeSerializer(many=True), 404: _ERRORS[404]},
    )
    def get(self, request: Request, pk: int) -> Response:
        trees = selectors.rollout_trees(run=_run(request, pk), step=_int(request, "step", None))
        return Response(RolloutTreeSerializer(trees, many=True).data)
