from django.contrib import admin

from .models import BaseModel


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("display_name", "slug", "path", "parameters_m", "needs_gpu", "is_active", "position")
    list_editable = ("is_active", "position")
