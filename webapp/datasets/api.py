"""REST API of datasets: list (filters kind/team), multipart upload, retrieve, rename, delete, preview."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.auth import ScopedThrottle
from webapp.core.api import ErrorSerializer
from webapp.core.errors import DomainError
from webapp.core.ownership import owner_for

from . import selectors, services
from .models import Dataset
from .preview import Preview
from .uploads import install_upload_cap, too_large_message


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid input: the message names the problem; `fields.errors` lists the first 50 bad lines.",
        404: "No such dataset (or one you may not see), team or base model.",
        409: "The dataset is in use, or its files are not in place yet.",
        413: "The file is over the upload limit.",
        429: "Too many uploads; retry after the `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=meaning[code]) for code in codes}


class DatasetSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    owner = serializers.CharField(source="owner_label", read_only=True)
    team = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "description", "kind", "format", "original_name", "eval_original_name", "size_bytes",
            "stored_bytes", "sha256", "rows", "train_rows", "eval_rows", "eval_percent", "split_seed", "stats",
            "owner", "team", "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("name", "description")]

    def get_team(self, dataset: Dataset) -> str | None:
        """The owning team's slug; null when a user owns the dataset."""
        return dataset.owner_team.slug if dataset.owner_team_id else None  # type: ignore[union-attr]

    def get_created_by(self, dataset: Dataset) -> str | None:
        return dataset.created_by.username if dataset.created_by_id else None  # type: ignore[union-attr]


class DatasetUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    file = serializers.FileField(help_text="JSONL, CSV or parquet (verl/ARPO schema too); .gz accepted.")
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices, default=Dataset.Kind.PROMPTS)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Default: the file name.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    team = serializers.CharField(required=False, allow_blank=True, help_text="Slug or id of your team to own it.")
    eval_file = serializers.FileField(required=False, help_text="prompts only: a separate eval file.")
    eval_percent = serializers.IntegerField(
        required=False, min_value=0, max_value=50, help_text="prompts only: carve off this share as eval."
    )
    split_seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=0)


class DatasetUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class PreviewRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    line = serializers.IntegerField(help_text="Line (row) of the stored normalized file.")
    text = serializers.CharField(help_text="Exactly what the model is given, chat template applied.")
    tokens = serializers.IntegerField()
    answers = serializers.ListField(child=serializers.CharField())
    masked = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="SFT: [start, end) character ranges of `text` that are tool results (not trained on).",
    )
    warnings = serializers.ListField(child=serializers.CharField())


class HistogramBinSerializer(serializers.Serializer):  # type: ignore[type-arg]
    lo = serializers.IntegerField()
    hi = serializers.IntegerField()
    count = serializers.IntegerField()
    share = serializers.FloatField(help_text="count / the largest bin's count")


class TokenStatsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    count = serializers.IntegerField()
    min = serializers.IntegerField(required=False)
    max = serializers.IntegerField(required=False)
    mean = serializers.FloatField(required=False)
    p95 = serializers.IntegerField(required=False)


class PreviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    base_model = serializers.CharField(help_text="Slug of the base model whose chat template was used.")
    call_format = serializers.CharField()
    tools = serializers.ListField(child=serializers.CharField())
    system_prompt = serializers.CharField(allow_blank=True)
    rows = PreviewRowSerializer(many=True)
    token_stats = TokenStatsSerializer()
    histogram = HistogramBinSerializer(many=True)
    sampled_rows = serializers.IntegerField(help_text="The first rows whose token counts make the histogram.")


class _DatasetScope:
    def get_queryset(self) -> QuerySet[Dataset]:
        request: Request = self.request  # type: ignore[attr-defined]
        if getattr(self, "swagger_fake_view", False):
            return Dataset.objects.none()
        return selectors.dataset_list(
            user=request.user, kind=request.query_params.get("kind") or None, team=request.query_params.get("team")
        )


_LIST_PARAMS = [
    OpenApiParameter("kind", str, enum=list(Dataset.Kind.values), description="Only datasets of this kind."),
    OpenApiParameter("team", str, description='Only this team\'s datasets (slug or id); "me": only your own.'),
]


@extend_schema_view(
    get=extend_schema(summary="Datasets you can see", parameters=_LIST_PARAMS),
    post=extend_schema(
        summary="Upload a dataset",
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={201: DatasetSerializer, **_errors(400, 404, 413, 429)},
    ),
)
class DatasetListCreate(_DatasetScope, generics.ListAPIView):  # type: ignore[type-arg]
    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]
    throttle_scope = "upload"

    def initialize_request(self, request: Any, *args: Any, **kwargs: Any) -> Request:
        if request.method == "POST":
            install_upload_cap(request)  # before anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    def get_throttles(self) -> list[Any]:
        return [ScopedThrottle()] if self.request.method == "POST" else []

    def post(self, request: Request) -> Response:
        body = request.data  # parsed here, through the capped handler
        too_large = too_large_message(request._request)
        if too_large:
            raise DomainError(too_large, code="too_large", status=413, fields={"file": [too_large]})
        form = DatasetUploadSerializer(data=body)
        form.is_valid(raise_exception=True)
        v = form.validated_data
        dataset = services.dataset_create(
            user=request.user, owner=owner_for(request.user, v.get("team") or None), kind=v["kind"], file=v["file"],
            name=v.get("name", ""), description=v.get("description", ""), eval_file=v.get("eval_file"),
            eval_percent=v.get("eval_percent"), split_seed=v["split_seed"],
        )  # fmt: skip
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="One dataset", responses={200: DatasetSerializer, **_errors(404)}),
    patch=extend_schema(
        summary="Rename a dataset or change its description",
        request=DatasetUpdateSerializer,
        responses={200: DatasetSerializer, **_errors(400, 404)},
    ),
    delete=extend_schema(summary="Delete a dataset and its files", responses={204: None, **_errors(404, 409)}),
)
class DatasetDetail(_DatasetScope, generics.RetrieveDestroyAPIView):  # type: ignore[type-arg]
    serializer_class = DatasetSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> Dataset:
        return selectors.dataset_get(user=self.request.user, dataset_id=self.kwargs["pk"])

    def patch(self, request: Request, pk: int) -> Response:
        form = DatasetUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        dataset = services.dataset_update(dataset=self.get_object(), **form.validated_data)
        return Response(DatasetSerializer(dataset).data)

    def perform_destroy(self, instance: Dataset) -> None:
        services.dataset_delete(dataset=instance)


def preview_for_request(*, user: Any, dataset: Dataset, params: Any) -> Preview:
    """Parse base_model / tools / call_format / rows from query parameters and render the preview."""
    from .preview import dataset_preview, preview_tokenizer

    raw = ",".join(params.getlist("tools")) if hasattr(params, "getlist") else str(params.get("tools", ""))
    tool_ids = [t for t in raw.replace(" ", "").split(",") if t]
    if any(not t.isdigit() for t in tool_ids):
        raise DomainError("tools: give tool ids separated by commas.", fields={"tools": ["Tool ids, e.g. 3,5."]})
    try:
        rows = min(20, max(1, int(params.get("rows", 5))))
    except ValueError:
        raise DomainError("rows: give a whole number.", fields={"rows": ["A number from 1 to 20."]}) from None
    slug, tokenizer = preview_tokenizer(params.get("base_model") or None)
    configs: list[Any] = []
    if tool_ids:
        from webapp.tools.selectors import tool_configs_for

        configs = tool_configs_for(user=user, tool_ids=[int(t) for t in tool_ids])
    call_format = params.get("call_format") or "tags"
    return dataset_preview(
        dataset=dataset, tokenizer=tokenizer, base_model=slug, tool_configs=configs, call_format=call_format, rows=rows
    )


class DatasetPreview(APIView):
    @extend_schema(
        summary="The first rows as the model will see them",
        parameters=[
            OpenApiParameter("base_model", str, description="Base model slug (default: the first one prepared)."),
            OpenApiParameter("tools", str, description="Tool ids, comma-separated, whose system prompt to include."),
            OpenApiParameter(
                "call_format", str, enum=["tags", "hermes"], description="Tool-call format (default tags)."
            ),
            OpenApiParameter("rows", OpenApiTypes.INT, description="Rows to show, 1 to 20 (default 5)."),
        ],
        responses={200: PreviewSerializer, **_errors(400, 404, 409)},
    )
    def get(self, request: Request, pk: int) -> Response:
        dataset = selectors.dataset_get(user=request.user, dataset_id=pk)
        preview = preview_for_request(user=request.user, dataset=dataset, params=request.query_params)
        return Response(PreviewSerializer(preview).data)
