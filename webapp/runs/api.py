"""REST API of runs, the base-model catalogue, presets and the generated config schema.

A run is created and changed even when its config has problems: it is then a draft with
`launchable: false` and `errors` by dotted key. Inputs that cannot form a config at all (an unknown
key, a wrong type, a dataset the caller may not see) answer 400 `{"message", "code", "fields"}`.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.api import ErrorSerializer

from . import configs, selectors, services
from .models import BaseModel, Run

PRESETS = [name for name, _ in configs.preset_choices()]


_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; `fields` names each bad key."),
    404: OpenApiResponse(ErrorSerializer, description="No such run, or not yours to see."),
}
_DRAFT_ONLY = {409: OpenApiResponse(ErrorSerializer, description="The run is not a draft.")}


class RunSerializer(serializers.ModelSerializer):
    preset_label = serializers.CharField(read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tools = serializers.SerializerMethodField(help_text="Tool ids, in the order the config lists them.")
    owner = serializers.CharField(source="owner_label", read_only=True)
    team = serializers.SlugRelatedField(source="owner_team", slug_field="slug", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    overrides = serializers.DictField(help_text="What the user set over the preset (nested config keys).")
    config = serializers.DictField(
        source="public_config",
        help_text="The resolved config the engine gets (as config.yaml exports); the server's folders appear by "
        "their role (media/…, var/…).",
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Problems by dotted config key (or dataset/eval_dataset/sft_dataset/tools); empty when launchable.",
    )
    warnings = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Run
        fields = [
            "id", "uid", "name", "status", "preset", "preset_label", "base_model", "dataset", "eval_dataset",
            "sft_dataset", "tools", "overrides", "config", "launchable", "errors", "warnings", "validated_at",
            "cloned_from", "twin_of", "owner", "team", "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_tools(self, run: Run) -> list[int]:
        return [t.pk for t in selectors.run_tools(run)]


class RunWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    preset = serializers.ChoiceField(choices=PRESETS, default=configs.DEFAULT_PRESET)
    base_model = serializers.CharField(help_text="A base model's slug (see /base-models/).")
    dataset = serializers.IntegerField(help_text="A prompts dataset's id.")
    eval_dataset = serializers.IntegerField(required=False, allow_null=True, help_text="Held-out prompts dataset id.")
    sft_dataset = serializers.IntegerField(required=False, allow_null=True, help_text="SFT demonstrations dataset id.")
    tools = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    overrides = serializers.DictField(
        required=False,
        default=dict,
        help_text='Config keys over the preset, dotted ({"rollout.group_size": 8}) or nested; see /config-schema/.',
    )
    team = serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="Team slug to own it.")


class RunPatchSerializer(RunWriteSerializer):
    replace_overrides = serializers.BooleanField(
        required=False, default=False, help_text="Replace the overrides instead of merging (null drops one)."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
        self.fields.pop("team")
        for name in ("preset", "tools", "overrides"):
            self.fields[name].default = serializers.empty


class RunCloneSerializer(RunPatchSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"] = serializers.CharField(
            required=False, allow_null=True, allow_blank=True, help_text="Team slug to own the clone (default: same)."
        )


class RunImportSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="The run YAML (multipart).")
    yaml = serializers.CharField(required=False, trim_whitespace=False, help_text="Or the run YAML as text.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    preset = serializers.ChoiceField(choices=PRESETS, required=False, help_text="Default: the closest preset.")
    team = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    base_model = serializers.CharField(required=False, help_text="Slug; default: the file's model.path.")
    dataset = serializers.IntegerField(required=False, help_text="Default: the dataset at data.train_path.")
    eval_dataset = serializers.IntegerField(required=False, allow_null=True)
    sft_dataset = serializers.IntegerField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("file" in attrs) == ("yaml" in attrs):
            raise serializers.ValidationError({"file": ["Send the run YAML as `file` or as `yaml`, once."]})
        return attrs


class RunFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(method="by_team", help_text='A team slug, or "personal".')
    status = django_filters.ChoiceFilter(choices=Run.Status.choices)
    preset = django_filters.CharFilter()
    base_model = django_filters.CharFilter(field_name="base_model__slug", help_text="Base model slug.")
    dataset = django_filters.NumberFilter(field_name="dataset_id")
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Run
        fields = ["team", "status", "preset", "base_model", "dataset", "search"]

    def by_team(self, qs: QuerySet[Run], name: str, value: str) -> QuerySet[Run]:
        return qs.filter(owner_team__isnull=True) if value == "personal" else qs.filter(owner_team__slug=value)


def _choices(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "preset", "base_model", "dataset", "eval_dataset", "sft_dataset", "tools", "overrides")
    return {k: data[k] for k in keys if k in data}


@extend_schema_view(
    get=extend_schema(summary="Runs you can see", responses={200: RunSerializer(many=True)}),
    post=extend_schema(
        summary="Create a draft run",
        request=RunWriteSerializer,
        responses={201: RunSerializer, **_ERRORS},
    ),
)
class RunListCreate(generics.ListCreateAPIView):
    serializer_class = RunSerializer
    filterset_class = RunFilter

    def get_queryset(self) -> QuerySet[Run]:
        return selectors.run_list(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = RunWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = services.run_create(user=request.user, team=data.get("team") or None, **_choices(data))
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="A run", responses={200: RunSerializer, **_ERRORS}),
    patch=extend_schema(
        summary="Change a draft",
        description="Overrides merge into the current ones (a null value drops one) unless `replace_overrides`.",
        request=RunPatchSerializer,
        responses={200: RunSerializer, **_ERRORS, **_DRAFT_ONLY},
    ),
    delete=extend_schema(summary="Delete a draft", responses={204: None, **_ERRORS, **_DRAFT_ONLY}),
)
class RunDetail(APIView):
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(selectors.run_get(user=request.user, run_id=pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        body = RunPatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = services.run_update(
            user=request.user, run=run, replace_overrides=data.get("replace_overrides", False), **_choices(data)
        )
        return Response(RunSerializer(run).data)

    def delete(self, request: Request, pk: int) -> Response:
        services.run_delete(user=request.user, run=selectors.run_get(user=request.user, run_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunClone(APIView):
    @extend_schema(
        summary="Clone a run, with changes",
        request=RunCloneSerializer,
        responses={201: RunSerializer, **_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=pk)
        body = RunCloneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        name = data.pop("name", None)
        team = data.pop("team", services.UNSET)
        clone = services.run_clone(user=request.user, run=run, name=name, team=team or None, **_choices(data))
        return Response(RunSerializer(clone).data, status=status.HTTP_201_CREATED)


class RunConfigYaml(APIView):
    @extend_schema(
        summary="The resolved config as YAML",
        description="A file `python -m arpo_engine train` reads as is.",
        responses={(200, "application/yaml"): OpenApiTypes.STR, 404: OpenApiResponse(ErrorSerializer)},
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        run = selectors.run_get(user=request.user, run_id=pk)
        response = HttpResponse(services.export_yaml(run), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.yaml"'
        return response


class RunImport(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        summary="Create a draft from a run YAML",
        description="Unknown keys are refused by dotted key; data paths, model path and tool names map back to "
        "your datasets, the catalogue and your tools (or name them explicitly).",
        request={"multipart/form-data": RunImportSerializer, "application/json": RunImportSerializer},
        responses={201: RunSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = RunImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        text = data["file"].read(services.IMPORT_MAX_BYTES + 1) if "file" in data else data["yaml"]
        explicit = {k: data[k] for k in ("base_model", "dataset", "eval_dataset", "sft_dataset") if k in data}
        run = services.run_import(
            user=request.user,
            text=text,
            name=data.get("name") or None,
            preset=data.get("preset"),
            team=data.get("team") or None,
            choices=explicit,
        )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class BaseModelSerializer(serializers.ModelSerializer):
    prepared = serializers.SerializerMethodField(help_text="Its tokenizer is on this server (prompt lengths checked).")

    class Meta:
        model = BaseModel
        fields = ["slug", "display_name", "description", "parameters_m", "max_model_len", "needs_gpu", "prepared"]
        read_only_fields = fields

    def get_prepared(self, model: BaseModel) -> bool:
        return model.local_folder() is not None


@extend_schema_view(get=extend_schema(summary="The base models the service offers"))
class BaseModelList(generics.ListAPIView):
    serializer_class = BaseModelSerializer
    pagination_class = None
    filterset_class = None

    def get_queryset(self) -> QuerySet[BaseModel]:
        return selectors.base_model_list()


class PresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    values = serializers.DictField(help_text="The keys the preset file sets.")
    resolved = serializers.DictField(help_text="The full config a run of this preset starts from.")


class PresetList(APIView):
    @extend_schema(summary="Presets and their values", responses={200: PresetSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(PresetSerializer(selectors.preset_list(), many=True).data)


class FieldMetaSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Dotted config key: the form field and the `overrides` key.")
    section = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=["int", "float", "bool", "str", "text", "choice", "list", "mapping", "tools"]
    )
    default = serializers.JSONField(allow_null=True)
    help = serializers.CharField()
    unit = serializers.CharField(allow_null=True)
    paper_default = serializers.JSONField(allow_null=True)
    choices = serializers.ListField(child=serializers.JSONField())
    group = serializers.CharField()
    advanced = serializers.BooleanField(help_text="Rarely changed: folded in the form.")
    managed_by = serializers.CharField(allow_null=True, help_text="Set by the service from this run choice.")
    item_fields = serializers.ListField(child=serializers.DictField(), required=False)


class FieldGroupSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    fields = FieldMetaSerializer(many=True)


class PresetNameSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()


class ConfigSchemaSerializer(serializers.Serializer):
    groups = FieldGroupSerializer(many=True)
    presets = PresetNameSerializer(many=True)


class ConfigSchema(APIView):
    @extend_schema(
        summary="Every config knob: type, default, help, unit, paper default",
        description="Generated from arpo_engine.config's dataclasses and docstrings; the web form uses the same.",
        responses={200: ConfigSchemaSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.config_schema())
