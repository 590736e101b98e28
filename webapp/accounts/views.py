from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def signup(request: HttpRequest) -> HttpResponse:
    return render(request, "core/error.html", {"title": "Sign up", "message": "Coming soon."})


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    return render(request, "core/error.html", {"title": "Teams", "message": "Coming soon."})
