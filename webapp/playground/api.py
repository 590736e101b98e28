"""REST API of the playground: ask a checkpoint's agent a question (and the run's base model), read the
session and its numbered events. Live clients use the websocket (`ws_url`); others poll `events_url`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer
from webapp.core.errors import DomainError
from webapp.runs import selectors as run_selectors

from . import live, selectors, services
from .models import PlaygroundEvent, PlaygroundSession

_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="No question, or one that is too long."),
    404: OpenApiResponse(ErrorSerializer, description="No such run, checkpoint or session, or not yours to see."),
    409: OpenApiResponse(ErrorSerializer, description="You have a question being answered already."),
}


class PlaygroundAskSerializer(serializers.Serializer):
    question = serializers.CharField(
        allow_blank=True, trim_whitespace=False,
        help_text=f"What to ask, up to {services.QUESTION_MAX_CHARS} characters.",
    )  # fmt: skip


class PlaygroundEventSerializer(serializers.ModelSerializer):
    data = serializers.DictField(
        help_text="status {state: loading | answering, model, load_s, cached}; model {text}; tool_call {index, name, "
        "arguments, raw, error}; tool_result {index, name, output, error, latency_ms}; final {answer, text, "
        "finish_reason, tool_calls, tokens, seconds}; error {code, message}."
    )

    class Meta:
        model = PlaygroundEvent
        fields = ["seq", "side", "kind", "data", "created_at"]
        read_only_fields = fields


class PlaygroundSessionSerializer(serializers.ModelSerializer):
    run_name = serializers.CharField(source="run.name")
    step = serializers.IntegerField(source="checkpoint.step", help_text="The checkpoint's step.")
    base_model = serializers.CharField(source="run.base_model.display_name")
    asked_by = serializers.CharField(source="created_by.username", default=None)
    sides = serializers.DictField(
        child=serializers.CharField(), help_text="trained, base: queued | running | done | failed"
    )
    answers = serializers.SerializerMethodField(
        help_text="Each side's final event data (answer, text, finish_reason, tool_calls, tokens, seconds) or its "
        "error ({code, message}), null while it is being answered."
    )
    ws_url = serializers.SerializerMethodField(help_text="The live stream (the run socket's protocol).")
    events_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = PlaygroundSession
        fields = ["id", "run", "run_name", "step", "base_model", "question", "status", "sides", "answers", "asked_by",
                  "created_at", "started_at", "finished_at", "ws_url", "events_url", "page_url"]  # fmt: skip
        read_only_fields = fields

    def get_answers(self, session: PlaygroundSession) -> dict[str, Any]:
        ends = session.events.filter(kind__in=(PlaygroundEvent.Kind.FINAL, PlaygroundEvent.Kind.ERROR)).order_by("seq")
        out: dict[str, Any] = {side: None for side in session.sides}
        for event in ends:
            out[event.side] = {"kind": event.kind, **event.data}
        return out

    def get_ws_url(self, session: PlaygroundSession) -> str:
        return live.urls(session)["ws_url"]

    def get_events_url(self, session: PlaygroundSession) -> str:
        return live.urls(session)["events_url"]

    def get_page_url(self, session: PlaygroundSession) -> str:
        return live.urls(session)["page_url"]


class PlaygroundStart(APIView):
    @extend_schema(
        summary="Ask a checkpoint's agent a question, next to the run's base model",
        description="Queues two answers on the worker: the checkpoint (a step, `latest` or `best`) with the run's "
        "tools and limits, and the run's base model with the same instructions and tools. One session at a time "
        "per person. Follow `ws_url`, or poll `events_url` with `after`.",
        request=PlaygroundAskSerializer,
        responses={202: PlaygroundSessionSerializer, **_ERRORS},
    )
    def post(self, request: Request, pk: int, ref: str) -> Response:
        run = run_selectors.run_get(user=request.user, run_id=pk)
        body = PlaygroundAskSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.session_start(user=request.user, run=run, ref=ref, question=body.validated_data["question"])
        return Response(PlaygroundSessionSerializer(session).data, status=status.HTTP_202_ACCEPTED)


class PlaygroundDetail(APIView):
    @extend_schema(summary="A playground session", responses={200: PlaygroundSessionSerializer, 404: _ERRORS[404]})
    def get(self, request: Request, session_id: int) -> Response:
        session = selectors.session_get(user=request.user, session_id=session_id)
        return Response(PlaygroundSessionSerializer(session).data)


def _int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return max(0, int(str(value)))
    except ValueError:
        raise DomainError(f"{name} must be a whole number.", fields={name: ["A whole number."]}) from None


class PlaygroundEvents(APIView):
    @extend_schema(
        summary="A playground session's events, oldest first",
        parameters=[
            OpenApiParameter("after", int, description="Only events with a larger seq (resume a stream)."),
            OpenApiParameter("limit", int, description="At most this many (default 500, at most 5000)."),
        ],
        responses={200: PlaygroundEventSerializer(many=True), 400: _ERRORS[400], 404: _ERRORS[404]},
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = selectors.session_get(user=request.user, session_id=session_id)
        events = selectors.session_events(
            session=session, after=_int(request, "after", 0), limit=_int(request, "limit", 500) or 500
        )
        return Response(PlaygroundEventSerializer(events, many=True).data)
