"""REST API of compute used: `GET /api/v1/usage/`, the caller's totals and their teams' (usage.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import usage


class TotalsSerializer(serializers.Serializer):
    runs = serializers.IntegerField(help_text="Runs launched.")
    wall_seconds = serializers.FloatField(help_text="Seconds the runs' actors ran the engine.")
    cpu_seconds = serializers.FloatField(help_text="CPU seconds the runs' actor processes used.")
    gpu_seconds = serializers.FloatField(help_text="GPUs Ray assigned × seconds.")


class UserTotalsSerializer(TotalsSerializer):
    username = serializers.CharField()


class TeamTotalsSerializer(TotalsSerializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    members = UserTotalsSerializer(many=True, help_text="The team's runs by who created them.")


class UsageSerializer(serializers.Serializer):
    user = UserTotalsSerializer(help_text="Runs you created, personal and for your teams.")
    teams = TeamTotalsSerializer(many=True, help_text="Each of your teams' runs.")


class Usage(APIView):
    @extend_schema(responses={200: UsageSerializer}, summary="Compute used: your runs' and your teams' totals.")
    def get(self, request: Request) -> Response:
        return Response(UsageSerializer(usage.usage_summary(user=request.user)).data)
