"""REST API of tools: CRUD, "try it" (202, runs on the worker) and its trial results.

Secret headers are write-only: responses carry only `secret_header_names` and `has_secrets`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer

from . import selectors, services
from .models import Tool, ToolTrial


class ToolSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner_label", read_only=True)
    team = serializers.CharField(write_only=True, required=False, allow_null=True, allow_blank=True,
                                 help_text="Slug or id of a team of yours to own the tool (create only).")  # fmt: skip
    schema = serializers.JSONField(
        required=False, help_text="OpenAI function-tool schema; the kind's default if omitted."
    )
    allowed_hosts = serializers.ListField(child=serializers.CharField(), required=False)
    secret_headers = serializers.DictField(
        child=serializers.CharField(), write_only=True, required=False,
        help_text="http only. Header name -> value, stored encrypted and never returned. Omit to keep; {} clears.",
    )  # fmt: skip
    corpus = serializers.IntegerField(source="corpus_id", required=False, allow_null=True)
    has_secrets = serializers.BooleanField(read_only=True)

    class Meta:
        model = Tool
        fields = [
            "id", "name", "kind", "description", "schema", "timeout_s", "memory_mb", "max_output_bytes", "top_k",
            "corpus", "url", "allowed_hosts", "secret_headers", "secret_header_names", "has_secrets",
            "owner", "team", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["secret_header_names", "created_at", "updated_at"]
        extra_kwargs = {"url": {"required": False}, "description": {"required": False}}

    def create(self, validated: dict[str, Any]) -> Tool:
        user = self.context["request"].user
        return services.tool_create(user=user, corpus=validated.pop("corpus_id", None), **validated)

    def update(self, tool: Tool, validated: dict[str, Any]) -> Tool:
        validated.pop("team", None)
        if validated.pop("kind", tool.kind) != tool.kind:
            raise serializers.ValidationError({"kind": ["The kind of a tool cannot change; define a new tool."]})
        if "corpus_id" in validated:
            validated["corpus"] = validated.pop("corpus_id")
        return services.tool_update(user=self.context["request"].user, tool=tool, **validated)


class ToolTrialSerializer(serializers.ModelSerializer):
    tool = serializers.IntegerField(source="tool_id", read_only=True)

    class Meta:
        model = ToolTrial
        fields = ["id", "tool", "arguments", "status", "output", "error", "latency_ms", "created_at", "finished_at"]
        read_only_fields = fields


class ToolTryRequestSerializer(serializers.Serializer):
    arguments = serializers.DictField(help_text="The call's arguments, checked against the tool's parameters.")


_ERRORS = {400: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer)}


@extend_schema_view(
    get=extend_schema(summary="List the tools you can see"),
    post=extend_schema(summary="Define a tool", responses={201: ToolSerializer, **_ERRORS}),
)
class ToolListCreate(generics.ListCreateAPIView):
    serializer_class = ToolSerializer
    filterset_fields = ["kind", "name"]

    def get_queryset(self) -> QuerySet[Tool]:
        return selectors.tool_list(user=self.request.user)


@extend_schema_view(
    get=extend_schema(summary="One tool", responses={200: ToolSerializer, 404: OpenApiResponse(ErrorSerializer)}),
    put=extend_schema(summary="Change a tool", responses={200: ToolSerializer, **_ERRORS}),
    patch=extend_schema(summary="Change some fields of a tool", responses={200: ToolSerializer, **_ERRORS}),
    delete=extend_schema(summary="Delete a tool", responses={204: None, 404: OpenApiResponse(ErrorSerializer)}),
)
class ToolDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = ToolSerializer

    def get_object(self) -> Tool:
        return selectors.tool_get(user=self.request.user, tool_id=self.kwargs["pk"])

    def perform_destroy(self, instance: Tool) -> None:
        services.tool_delete(user=self.request.user, tool=instance)


class ToolTry(APIView):
    @extend_schema(
        summary="Try the tool once on the worker",
        request=ToolTryRequestSerializer,
        responses={202: ToolTrialSerializer, **_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        tool = selectors.tool_get(user=request.user, tool_id=pk)
        body = ToolTryRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        trial = services.tool_trial_create(user=request.user, tool=tool, arguments=body.validated_data["arguments"])
        return Response(ToolTrialSerializer(trial).data, status=status.HTTP_202_ACCEPTED)


class ToolTrialDetail(APIView):
    @extend_schema(
        summary="A trial's status and, when done, its output, error and latency",
        responses={200: ToolTrialSerializer, 404: OpenApiResponse(ErrorSerializer)},
    )
    def get(self, request: Request, pk: int, trial_id: int) -> Response:
        trial = selectors.tool_trial_get(user=request.user, tool_id=pk, trial_id=trial_id)
        return Response(ToolTrialSerializer(trial).data)
