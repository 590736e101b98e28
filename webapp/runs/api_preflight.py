"""REST API of a draft's preflight check and of "Compare with GRPO" (the GRPO twin)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer

from . import preflight, selectors, twins
from .api import RunSerializer
from .models import Preflight

_ERRORS = {
    404: OpenApiResponse(ErrorSerializer, description="No such run (or check), or not yours to see."),
    409: OpenApiResponse(ErrorSerializer, description="The run is not in a state that allows this."),
}


class PreflightWarningSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="no_tool_calls, equal_rewards, degenerate_groups, clipped, check_cap, …")
    message = serializers.CharField(help_text="What is wrong and what to do about it.")


class PreflightSerializer(serializers.ModelSerializer):
    results = serializers.DictField(
        help_text="model (its role), prompt_text (the first prompt as the model reads it), prompt_tokens, metrics "
        "(tools/call_rate, format/ok_frac, reward/mean, reward/std, groups/degenerate_frac, response/len_mean, "
        "response/clip_frac …), samples (a few paths), settings (prompts, paths per prompt, response cap, sampler)."
    )
    warnings = PreflightWarningSerializer(many=True)
    timings = serializers.DictField(child=serializers.FloatField(), help_text="Seconds: load_s, rollout_s, total_s …")

    class Meta:
        model = Preflight
        fields = ["id", "run", "status", "results", "warnings", "timings", "error", "created_at", "started_at",
                  "finished_at"]  # fmt: skip
        read_only_fields = fields


class RunPreflightStart(APIView):
    @extend_schema(
        summary="Check a draft before launching it",
        description="A few rollouts of the run's starting model with its tools and scorer, on the worker. Poll "
        "the returned check until its status is done or failed.",
        request=None,
        responses={202: PreflightSerializer, **_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        found = preflight.run_preflight_start(user=request.user, run=run)
        return Response(PreflightSerializer(found).data, status=status.HTTP_202_ACCEPTED)


class RunPreflightDetail(APIView):
    @extend_schema(summary="A check of a run", responses={200: PreflightSerializer, 404: _ERRORS[404]})
    def get(self, request: Request, pk: int, preflight_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        return Response(PreflightSerializer(preflight.preflight_get(run=run, preflight_id=preflight_id)).data)


class RunGrpoTwin(APIView):
    @extend_schema(
        summary="Compare with GRPO: create the run's GRPO twin and launch the pair",
        description="Same data, tools, model, seed, group size, steps and learning rate; N = M, no branching. A "
        "launchable draft is launched with its twin; a launched run gets its twin launched; otherwise both "
        "stay drafts. The twin names the run in `twin_of`.",
        request=None,
        responses={201: RunSerializer, **_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        twin = twins.run_grpo_twin(user=request.user, run=run)
        return Response(RunSerializer(twin).data, status=status.HTTP_201_CREATED)
