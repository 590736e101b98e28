"""The ownership walk: every URL pattern, page and API route, as owner, teammate, outsider and anonymous.

`ROUTES` has one entry per URL pattern (keyed by its name, or its route when it has none). A pattern
without an entry fails `test_every_url_pattern_has_an_access_entry`: a new route cannot be added
without deciding who may reach it. Each entry says how to fill the URL's kwargs from objects made for
the test through the real services (tests/webapp/factories.py), which calls to make (GET always, and
for every object route at least one call that changes something), and what each caller gets:

- alice owns the objects: personal ones and ones of her team "lab";
- bob is alice's teammate: he gets the team's objects, and 404 for alice's personal ones;
- charlie is an outsider: 404 for every object and team route — never 403, never 200;
- anonymous: pages redirect to the sign-in page; the API answers 401 with the error shape.

Every response to someone who may not see an object must not show its name (lists included).
Each test gets its own rolled-back transaction, and each changing call its own fresh objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.webapp import factories as make
from tests.webapp.conftest import PASSWORD
from webapp.accounts.models import ApiToken, Invitation, Team
from webapp.datasets.models import Dataset
from webapp.playground.models import PlaygroundSession
from webapp.playground.services import session_start
from webapp.runs import lifecycle, recording
from webapp.runs.models import Preflight, Run
from webapp.runs.preflight import run_preflight_start
from webapp.runs.services import export_yaml
from webapp.tools.forms import ToolForm
from webapp.tools.models import Tool, ToolTrial

# Not part of the product's access model: Django's admin has its own staff-only gate and tests.
EXCLUDED_NAMESPACES = frozenset({"admin"})
# Static files and debug tooling, should a setting ever mount them.
EXCLUDED_PREFIXES = ("static/", "media/", "__debug__/")

ROLES = ("owner", "member", "outsider", "anon")
LOGIN = "login"  # expected outcome: a redirect to the sign-in page

# --- the objects a test needs, made lazily through the services --------------------------------------


@dataclass
class World:
    """alice's objects (personal or of team "lab"), made on first use. `fresh()` shares users and names."""

    alice: User
    bob: User
    charlie: User
    lab: Team
    markers: dict[str, list[str]] = field(default_factory=lambda: {"personal": [], "team": []})
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    def fresh(self) -> World:
        return World(self.alice, self.bob, self.charlie, self.lab, markers=self.markers)

    def team_of(self, variant: str) -> Team | None:
        return self.lab if variant == "team" else None

    def _once(self, kind: str, variant: str, build: Callable[[str], Any]) -> Any:
        """The object of this kind and variant, built once; a named one's name is remembered as a marker."""
        key = (kind, variant)
        if key not in self.cache:
            name = make.unique(f"{variant}_secret_{kind}")
            self.cache[key] = build(name)
            if variant in self.markers and getattr(self.cache[key], "name", None) == name:
                self.markers[variant].append(name)
        return self.cache[key]

    def dataset(self, variant: str) -> Dataset:
        return self._once("dataset", variant, lambda n: make.dataset(self.alice, team=self.team_of(variant), name=n))

    def tool(self, variant: str) -> Tool:
        return self._once("tool", variant, lambda n: make.tool(self.alice, team=self.team_of(variant), name=n))

    def trial(self, variant: str) -> ToolTrial:
        return self._once("trial", variant, lambda n: make.trial(self.alice, self.tool(variant)))

    def run(self, variant: str) -> Run:
        return self._once(
            "run",
            variant,
            lambda n: make.run(self.alice, team=self.team_of(variant), name=n, data=self.dataset(variant)),
        )

    def launched(self, variant: str) -> Run:
        """A run launched through the lifecycle service (queued; the task is sent only on a real commit)."""
        return self._once("launched", variant, lambda n: lifecycle.run_launch(user=self.alice, run=self.run(variant)))  # type: ignore[no-any-return]

    def cancelled(self, variant: str) -> Run:
        """A run launched, then cancelled before it started."""
        return self._once(
            "cancelled", variant, lambda n: lifecycle.run_cancel(user=self.alice, run=self.launched(variant))
        )  # type: ignore[no-any-return]

    def preflight(self, variant: str) -> Preflight:
        """A check of the run, queued (its task is sent only on a real commit)."""
        return self._once("preflight", variant, lambda n: run_preflight_start(user=self.alice, run=self.run(variant)))  # type: ignore[no-any-return]

    def checkpointed(self, variant: str) -> Run:
        """A launched run with one checkpoint recorded by the worker's service, its folder on disk."""

        def build(name: str) -> Run:
            run = self.launched(variant)
            folder = run.checkpoint_dir() / f"run-{run.pk}" / "step-1"
            folder.mkdir(parents=True)
            (folder / "config.json").write_text("{}")
            event = {"seq": 1, "kind": "checkpoint", "step": 1, "data": {"folder": str(folder), "metrics": {}}}
            recording.run_events_record(run_id=run.pk, events=[event])
            return run

        return self._once("checkpointed", variant, build)  # type: ignore[no-any-return]

    def session(self, variant: str) -> PlaygroundSession:
        """A question to the checkpointed run's latest step (its tasks are sent only on a real commit)."""
        return self._once(
            "session",
            variant,
            lambda n: session_start(user=self.alice, run=self.checkpointed(variant), ref="latest", question=n),
        )  # type: ignore[no-any-return]

    def token(self) -> ApiToken:
        return self._once("token", "personal", lambda n: make.token(self.alice, name=n)[0])  # type: ignore[no-any-return]

    def member(self) -> User:
        """A fresh member of "lab" besides alice and bob, to change or remove."""

        def build(name: str) -> User:
            user = User.objects.create_user(make.unique("dave"), password=PASSWORD)
            make.member(self.alice, self.lab, user)
            return user

        return self._once("member", "team", build)  # type: ignore[no-any-return]

    def invitation(self) -> Invitation:
        return self._once("invitation", "team", lambda n: make.invitation(self.alice, self.lab))  # type: ignore[no-any-return]

    def outsider(self) -> User:
        """Someone with an account who is in no team: invited in the invite calls."""
        return self._once("user", "-", lambda n: User.objects.create_user(make.unique("erin"), password=PASSWORD))  # type: ignore[no-any-return]

    def populate(self) -> None:
        """Everything alice has, so lists have something they must not show to others."""
        for variant in ("personal", "team"):
            self.dataset(variant), self.tool(variant), self.run(variant)
        self.token()

    def hidden_from(self, role: str) -> list[str]:
        """Names of alice's objects this caller may not see."""
        if role == "member":
            return list(self.markers["personal"])
        if role == "outsider":
            return [*self.markers["personal"], *self.markers["team"], "/account/teams/lab/", '"lab"']
        return []


# --- the table ---------------------------------------------------------------------------------------

Kwargs = Callable[[World, str], dict[str, Any]]
Data = Callable[[World, str, User | None], Any]


@dataclass(frozen=True)
class Call:
    method: str
    ok: int  # what the owner gets (and every signed-in caller, for routes that are not scoped)
    data: Data | None = None
    fmt: str | None = None  # "json" or "multipart" for the API
    member: int | None = None  # a teammate, where that differs from the owner (owner-only team actions)
    anon: int | None = None  # anonymous, on public routes, where that differs from `ok`
    same_for_all: bool = False  # refused before any lookup (405): the same answer for every signed-in caller


@dataclass(frozen=True)
class Entry:
    access: str  # public | signed_in | object | team | token
    calls: tuple[Call, ...]
    kwargs: Kwargs = lambda w, v: {}
    lists: bool = False  # a list: populate alice's objects first, so there is something to hide


def _pk(kind: str) -> Kwargs:
    return lambda w, v: {"pk": getattr(w, kind)(v).pk}


SLUG: Kwargs = lambda w, v: {"slug": w.lab.slug}  # noqa: E731
GET200 = Call("GET", 200)
POST_ONLY = Call("GET", 405, same_for_all=True)


def _upload(w: World, variant: str, user: User | None) -> dict[str, Any]:
    return {"kind": "prompts", "name": make.unique("upload"), "file": make.demo_file("train.jsonl", 8)}


def _tool_form(w: World, variant: str, user: User | None) -> dict[str, Any]:
    """The page's own defaults for a python tool (the kind the page starts with)."""
    return {k: v for k, v in ToolForm.initial_for("python").items() if v is not None}


def _tool_values(w: World, variant: str, user: User | None) -> dict[str, Any]:
    tool = w.tool(variant)
    values = ToolForm.initial_for(tool.kind, tool)
    return {**{k: v for k, v in values.items() if v is not None}, "description": "changed"}


def _try_args(w: World, variant: str, user: User | None) -> dict[str, Any]:
    return {"arguments": {"expression": "1 + 1"}}


def _own_dataset(w: World, variant: str, user: User | None) -> dict[str, Any]:
    user = user or w.alice  # anonymous is refused before the body is read
    return {
        "name": make.unique("api_run"),
        "preset": "arpo_paper",
        "base_model": "smollm2-135m",
        "dataset": make.dataset(user).pk,
    }


def _own_yaml(w: World, variant: str, user: User | None) -> dict[str, Any]:
    user = user or w.alice
    return {"yaml": export_yaml(make.run(user)), "name": make.unique("imported")}


def _question(w: World, variant: str, user: User | None) -> dict[str, Any]:
    return {"question": "What is 2 + 2?"}


def _latest(w: World, variant: str) -> dict[str, Any]:
    return {"pk": w.checkpointed(variant).pk, "ref": "latest"}


def _session(w: World, variant: str) -> dict[str, Any]:
    return {"session_id": w.session(variant).pk}


def _object(kind: str, *calls: Call) -> Entry:
    return Entry("object", (GET200, *calls), _pk(kind))


ROUTES: dict[str, Entry] = {
    # --- core
    "home": Entry("signed_in", (Call("GET", 302),)),
    "healthz": Entry("public", (GET200,)),
    "api-schema": Entry("public", (GET200,)),
    "api-docs": Entry("public", (GET200,)),
    "api-redoc": Entry("public", (GET200,)),
    # --- account pages
    "accounts:login": Entry(
        "public",
        (
            Call("GET", 302, anon=200),
            Call("POST", 302, lambda w, v, u: {"username": "alice", "password": "x"}, anon=200),
        ),
    ),
    "accounts:logout": Entry("public", (Call("GET", 405), Call("POST", 302))),
    "accounts:signup": Entry(
        "public",
        (
            Call("GET", 302, anon=200),
            Call(
                "POST",
                302,
                lambda w, v, u: {
                    "username": make.unique("newbie"),
                    "email": f"{make.unique('n')}@example.com",
                    "password1": PASSWORD,
                    "password2": PASSWORD,
                },
            ),
        ),
    ),
    "accounts:password_change": Entry(
        "signed_in",
        (
            GET200,
            Call(
                "POST",
                302,
                lambda w, v, u: {
                    "old_password": PASSWORD,
                    "new_password1": "another-horse-7731",
                    "new_password2": "another-horse-7731",
                },
            ),
        ),
    ),
    "accounts:teams": Entry("signed_in", (GET200,), lists=True),
    "accounts:team_create": Entry(
        "signed_in", (POST_ONLY, Call("POST", 302, lambda w, v, u: {"team-name": "Another"}))
    ),
    "accounts:token_create": Entry(
        "signed_in", (POST_ONLY, Call("POST", 200, lambda w, v, u: {"token-name": "laptop", "token-expires": "30"}))
    ),
    "accounts:token_revoke": Entry(
        "token", (POST_ONLY, Call("POST", 302)), lambda w, v: {"token_key": w.token().token_key}
    ),
    "accounts:team": Entry("team", (GET200,), SLUG),
    "accounts:team_invite": Entry(
        "team", (POST_ONLY, Call("POST", 302, lambda w, v, u: {"who": w.outsider().username, "role": "member"})), SLUG
    ),
    "accounts:member_role": Entry(
        "team",
        (POST_ONLY, Call("POST", 302, lambda w, v, u: {"role": "owner"})),
        lambda w, v: {"slug": w.lab.slug, "user_id": w.member().pk},
    ),
    "accounts:member_remove": Entry(
        "team", (POST_ONLY, Call("POST", 302)), lambda w, v: {"slug": w.lab.slug, "user_id": w.member().pk}
    ),
    "accounts:invitation_cancel": Entry(
        "team", (POST_ONLY, Call("POST", 302)), lambda w, v: {"slug": w.lab.slug, "invitation_id": w.invitation().pk}
    ),
    "accounts:team_leave": Entry("team", (POST_ONLY, Call("POST", 302)), SLUG),
    "accounts:team_delete": Entry(
        "team", (Call("GET", 200, member=302), Call("POST", 302, lambda w, v, u: {"confirm": w.lab.slug})), SLUG
    ),
    # --- accounts API
    "api-login": Entry(
        "public",
        (Call("GET", 405), Call("POST", 200, lambda w, v, u: {"username": "alice", "password": PASSWORD}, "json")),
    ),
    "api-logout": Entry("signed_in", (Call("GET", 405), Call("POST", 204))),
    "api-me": Entry("signed_in", (GET200,)),
    "api-tokens": Entry("signed_in", (GET200, Call("POST", 201, lambda w, v, u: {"name": "ci"}, "json")), lists=True),
    "api-token": Entry("token", (POST_ONLY, Call("DELETE", 204)), lambda w, v: {"token_key": w.token().token_key}),
    "api-teams": Entry(
        "signed_in", (GET200, Call("POST", 201, lambda w, v, u: {"name": "Another"}, "json")), lists=True
    ),
    "api-team": Entry("team", (GET200, Call("DELETE", 204, member=403)), SLUG),
    "api-team-leave": Entry("team", (POST_ONLY, Call("POST", 400, member=204)), SLUG),
    "api-team-members": Entry(
        "team",
        (GET200, Call("POST", 201, lambda w, v, u: {"username": w.outsider().username}, "json", member=403)),
        SLUG,
    ),
    "api-team-member": Entry(
        "team",
        (
            POST_ONLY,
            Call("PATCH", 200, lambda w, v, u: {"role": "owner"}, "json", member=403),
            Call("DELETE", 204, member=403),
        ),
        lambda w, v: {"slug": w.lab.slug, "username": w.member().username},
    ),
    "api-team-invitations": Entry("team", (Call("GET", 200, member=403),), SLUG),
    "api-team-invitation": Entry(
        "team",
        (POST_ONLY, Call("DELETE", 204, member=403)),
        lambda w, v: {"slug": w.lab.slug, "invitation_id": w.invitation().pk},
    ),
    # --- datasets
    "datasets:list": Entry("signed_in", (GET200,), lists=True),
    "datasets:upload": Entry("signed_in", (GET200, Call("POST", 302, _upload))),
    "datasets:detail": _object("dataset"),
    "datasets:edit": _object("dataset", Call("POST", 302, lambda w, v, u: {"name": "renamed", "description": ""})),
    "datasets:delete": _object("dataset", Call("POST", 302)),
    "api-datasets": Entry("signed_in", (GET200, Call("POST", 201, _upload, "multipart")), lists=True),
    "api-dataset": _object(
        "dataset", Call("PATCH", 200, lambda w, v, u: {"name": "renamed"}, "json"), Call("DELETE", 204)
    ),
    "api-dataset-preview": _object("dataset"),
    # --- tools
    "tools:list": Entry("signed_in", (GET200,), lists=True),
    "tools:create": Entry("signed_in", (GET200, Call("POST", 302, _tool_form))),
    "tools:detail": _object("tool"),
    "tools:edit": _object("tool", Call("POST", 302, _tool_values)),
    "tools:try": Entry(
        "object", (POST_ONLY, Call("POST", 302, lambda w, v, u: {"arguments": '{"expression": "1 + 1"}'})), _pk("tool")
    ),
    "tools:delete": _object("tool", Call("POST", 302)),
    "api-tools": Entry(
        "signed_in",
        (GET200, Call("POST", 201, lambda w, v, u: {"name": make.unique("calc"), "kind": "calculator"}, "json")),
        lists=True,
    ),
    "api-tool": _object(
        "tool", Call("PATCH", 200, lambda w, v, u: {"description": "changed"}, "json"), Call("DELETE", 204)
    ),
    "api-tool-try": Entry("object", (POST_ONLY, Call("POST", 202, _try_args, "json")), _pk("tool")),
    "api-tool-trial": Entry("object", (GET200,), lambda w, v: {"pk": w.tool(v).pk, "trial_id": w.trial(v).pk}),
    # --- runs
    "runs:list": Entry("signed_in", (GET200,), lists=True),
    "runs:create": Entry("signed_in", (GET200, Call("POST", 400, lambda w, v, u: {"preset": "arpo_paper"}))),
    "runs:import": Entry("signed_in", (GET200, Call("POST", 400, lambda w, v, u: {"name": "no file"}))),
    "runs:detail": _object("run"),
    "runs:head": _object("run"),
    "runs:edit": _object("run", Call("POST", 302, lambda w, v, u: {"action": "reset"})),
    "runs:export": _object("run"),
    "runs:clone": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("run")),
    "runs:delete": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("run")),
    "runs:launch": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("run")),
    "runs:cancel": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("launched")),
    "runs:resume": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("cancelled")),
    "runs:check": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("run")),
    "runs:checkpoints": _object("checkpointed"),
    "runs:checkpoint_download": Entry(
        "object", (GET200,), lambda w, v: {"pk": w.checkpointed(v).pk, "ref": "latest"}
    ),
    "runs:usage": Entry("signed_in", (GET200,), lists=True),
    "runs:grpo_twin": Entry("object", (POST_ONLY, Call("POST", 302)), _pk("run")),
    # Without ids: a chooser of the caller's own launched runs; with ids, scoping is tested in test_live_pages.py.
    "runs:compare": Entry("signed_in", (GET200,), lists=True),
    "api-runs": Entry("signed_in", (GET200, Call("POST", 201, _own_dataset, "json")), lists=True),
    "api-runs-import": Entry("signed_in", (Call("GET", 405), Call("POST", 201, _own_yaml, "json"))),
    "api-run": _object("run", Call("PATCH", 200, lambda w, v, u: {"name": "renamed"}, "json"), Call("DELETE", 204)),
    "api-run-clone": Entry("object", (POST_ONLY, Call("POST", 201, lambda w, v, u: {}, "json")), _pk("run")),
    "api-run-config-yaml": _object("run"),
    "api-run-launch": Entry("object", (POST_ONLY, Call("POST", 202)), _pk("run")),
    "api-run-cancel": Entry("object", (POST_ONLY, Call("POST", 202)), _pk("launched")),
    "api-run-resume": Entry("object", (POST_ONLY, Call("POST", 202)), _pk("cancelled")),
    "api-run-state": _object("run"),
    "api-run-events": _object("run"),
    "api-run-metrics": _object("run"),
    "api-run-rollouts": _object("run"),
    "api-run-checkpoints": _object("checkpointed"),
    "api-run-checkpoint-download": Entry(
        "object", (GET200,), lambda w, v: {"pk": w.checkpointed(v).pk, "ref": "1"}
    ),
    "api-run-preflight": Entry("object", (POST_ONLY, Call("POST", 202)), _pk("run")),
    "api-run-preflight-detail": Entry(
        "object", (GET200,), lambda w, v: {"pk": w.run(v).pk, "preflight_id": w.preflight(v).pk}
    ),
    "api-run-grpo-twin": Entry("object", (POST_ONLY, Call("POST", 201)), _pk("run")),
    # --- playground
    "playground:start": Entry("object", (GET200, Call("POST", 302, _question)), _latest),
    "playground:session": Entry("object", (GET200,), _session),
    "api-playground-start": Entry("object", (POST_ONLY, Call("POST", 202, _question, "json")), _latest),
    "api-playground": Entry("object", (GET200,), _session),
    "api-playground-events": Entry("object", (GET200,), _session),
    "api-usage": Entry("signed_in", (GET200,), lists=True),
    "api-base-models": Entry("signed_in", (GET200,)),
    "api-presets": Entry("signed_in", (GET200,)),
    "api-config-schema": Entry("signed_in", (GET200,)),
}


# --- enumerating the URL patterns ---------------------------------------------------------------------


def url_patterns() -> Iterator[tuple[str, str]]:
    """(key, route) of every URL pattern: the name (namespaced), or the route for an unnamed one."""

    def walk(patterns: list[Any], prefix: str, namespace: str | None) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                if inner in EXCLUDED_NAMESPACES:
                    continue
                yield from walk(pattern.url_patterns, route, inner)
            elif isinstance(pattern, URLPattern):
                if route.startswith(EXCLUDED_PREFIXES):
                    continue
                key = pattern.name if pattern.name else route
                yield (f"{namespace}:{key}" if namespace and pattern.name else key), route

    yield from walk(get_resolver().url_patterns, "", None)


def _variants(entry: Entry) -> tuple[str, ...]:
    return ("personal", "team") if entry.access == "object" else ("-",)


CASES = [
    pytest.param(name, variant, role, id=f"{name}-{variant}-{role}" if variant != "-" else f"{name}-{role}")
    for name, entry in ROUTES.items()
    for variant in _variants(entry)
    for role in ROLES
]


def test_every_url_pattern_has_an_access_entry() -> None:
    found = dict(url_patterns())
    missing = sorted(set(found) - set(ROUTES))
    assert not missing, f"URL patterns without an entry in the ownership walk: {missing}"
    stale = sorted(set(ROUTES) - set(found))
    assert not stale, f"entries for URL patterns that no longer exist: {stale}"


def test_the_walk_reaches_the_api_and_the_pages() -> None:
    routes = [route for _, route in url_patterns()]
    assert any(r.startswith("api/v1/") for r in routes) and any(r.startswith("datasets/") for r in routes)
    assert not any(r.startswith("admin/") for r in routes)


# --- one route, one variant, one caller ---------------------------------------------------------------


def expected(entry: Entry, call: Call, role: str, variant: str, api: bool) -> int | str:
    if role == "anon":
        if entry.access == "public":
            return call.anon if call.anon is not None else call.ok
        return 401 if api else LOGIN
    if entry.access in ("public", "signed_in") or call.same_for_all:
        return call.ok
    if role == "owner":
        return call.ok
    if role == "member":
        if entry.access == "team" or (entry.access == "object" and variant == "team"):
            return call.member if call.member is not None else call.ok
        return 404
    return 404  # the outsider: every object, team and token route


def _client(role: str, world: World, api_for: Callable[[User | None], APIClient], api: bool) -> Any:
    user = {"owner": world.alice, "member": world.bob, "outsider": world.charlie, "anon": None}[role]
    if api:
        return api_for(user), user
    client = Client()
    if user is not None:
        client.force_login(user)
    return client, user


def _send(client: Any, call: Call, url: str, data: Any) -> Any:
    method = getattr(client, call.method.lower())
    if data is None:
        return method(url)
    if isinstance(client, APIClient):
        return method(url, data, format=call.fmt or "json")
    if call.method == "POST":
        return method(url, data)  # form-encoded, or multipart when there is a file
    return method(url, data, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize(("name", "variant", "role"), CASES)
def test_access(
    name: str, variant: str, role: str, alice: User, bob: User, charlie: User, lab: Team, api_for: Any
) -> None:
    from django.urls import reverse

    entry = ROUTES[name]
    route = dict(url_patterns())[name]
    api = route.startswith("api/v1/")
    world = World(alice, bob, charlie, lab)
    if entry.lists:
        world.populate()
    for index, call in enumerate(entry.calls):
        target = world if call.method in ("GET", "HEAD") else world.fresh()  # a changing call gets fresh objects
        kwargs = entry.kwargs(target, variant)
        url = reverse(name, kwargs=kwargs or None)
        client, user = _client(role, world, api_for, api)
        data = call.data(target, variant, user) if call.data is not None else None
        response = _send(client, call, url, data)
        want = expected(entry, call, role, variant, api)
        got = response.status_code
        where = f"{call.method} {url} (call {index}) as {role}"
        if want == LOGIN:
            assert got == 302 and response["Location"].startswith("/login/"), f"{where}: {got}, not a sign-in redirect"
        else:
            assert got == want, f"{where}: expected {want}, got {got}: {_why(response)}"
        if api and got >= 400:
            body = response.json()
            assert {"message", "code"} <= set(body), f"{where}: not the error shape: {body}"
        hidden = world.hidden_from(role)
        text = _text(response)
        shown = [marker for marker in hidden if marker in text]
        assert not shown, f"{where}: the response shows {shown}"


def _why(response: Any) -> str:
    """The part of a response that explains it: an API body, or a page's form errors and messages."""
    text = _text(response)
    if "<html" not in text:
        return text[:500]
    found = re.findall(r'class="(?:errorlist|form-errors|flash)[^"]*"[^>]*>(.*?)</(?:ul|div|p)>', text, flags=re.S)
    return " | ".join(re.sub(r"<[^>]+>|\s+", " ", f).strip() for f in found)[:500] or text[:300]


def _text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")
