"""Run page load with a long history (docs/benchmarks.md, "Run page load").

A run with `--steps` steps of metrics (every chart's series, an eval every 10 steps), two rollout trees and
a checkpoint, recorded through the relay's own service; the page served by uvicorn (the project's ASGI app,
static files through the finders) and opened in Debian's chromium, headless, through Playwright. Reported:
- time from navigation start until every chart has drawn its history (`performance.mark("arpo:charts-drawn")`
  in run_page.ts), first load (cold cache) and the median of the reloads;
- the page's HTML (the embedded history) and the JavaScript and CSS it loads, raw and gzip-compressed.

    DATABASE_URL=postgres://root@localhost:5432/arpo_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/page_load.py --steps 2000 --loads 5

Without DATABASE_URL it uses a fresh SQLite file. Needs the built front end (`make frontend`).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.dev")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='arpo-page-load-')}/db.sqlite3"


def recorded_run(steps: int) -> tuple[Any, Any]:
    """A user and a running run with `steps` steps of history, recorded as a worker's relay records it."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tests.e2e.test_dashboard import TREES, metrics
    from tests.webapp import factories as make
    from webapp.runs import recording
    from webapp.runs.models import Run

    user = User.objects.create_user(f"bench-page-{time.time_ns()}", password=None)
    run = make.run(user, name=f"page load, {steps} steps")
    config = {**run.config, "train": {**run.config["train"], "steps": steps + 100}}
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED, config=config)
    rng = random.Random(7)
    events: list[dict[str, Any]] = [{"kind": "status", "data": {"status": "running"}},
                                    {"kind": "phase", "data": {"phase": "training"}}]  # fmt: skip
    for step in range(1, steps + 1):
        events.append({"kind": "metrics", "step": step, "data": metrics(min(step, 60), rng, "arpo")})
        if step in (steps - 1, steps):
            events += [{"kind": "rollout", "step": step, "data": tree["data"]} for tree in TREES]
    started = time.time() - 30.0 * steps
    for seq, event in enumerate(events, start=1):
        event["seq"], event["at"] = seq, started + 30.0 * (event.get("step") or 0)
    for i in range(0, len(events), 500):
        recording.run_events_record(run_id=run.pk, events=events[i : i + 500])
    run.refresh_from_db()
    return user, run


def serve() -> tuple[str, Any]:
    import uvicorn

    from tests.e2e.asgi_server import _free_port, application

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(application(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--loads", type=int, default=5, help="page loads after the first (cold) one")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_page_load.json"))
    args = parser.parse_args()

    t = time.perf_counter()
    user, run = recorded_run(args.steps)
    record_s = time.perf_counter() - t
    from django.conf import settings
    from django.test import Client
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    base, server = serve()
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    from django.urls import reverse

    url = base + reverse("runs:detail", args=[run.pk])

    loads: list[dict[str, float]] = []
    assets: dict[str, int] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": base}])
        page = context.new_page()

        def on_response(response: Any) -> None:
            kind = response.request.resource_type
            if kind in ("script", "stylesheet", "document"):
                with contextlib.suppress(Exception):  # a redirect or an aborted request has no body
                    assets[response.url] = len(response.body())

        page.on("response", on_response)
        for attempt in range(args.loads + 1):
            page.goto(url, wait_until="load")
            page.wait_for_function("performance.getEntriesByName('arpo:charts-drawn').length > 0", timeout=60_000)
            timing = page.evaluate(
                """() => {
                    const nav = performance.getEntriesByType('navigation')[0];
                    return {
                        drawn_ms: performance.getEntriesByName('arpo:charts-drawn')[0].startTime,
                        dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                        response_end_ms: nav.responseEnd,
                        charts: document.querySelectorAll('[data-run-charts] canvas').length,
                    };
                }"""
            )
            timing["cold"] = float(attempt == 0)
            loads.append(timing)
            if attempt == 0:  # asset sizes come from the cold load
                page.remove_listener("response", on_response)
        browser.close()
    server.should_exit = True

    dist = ROOT / "webapp" / "core" / "static" / "dist"

    def gz(path: Path) -> int:
        return len(gzip.compress(path.read_bytes(), 6))

    js = [p for p in dist.rglob("*.js")]
    page_js = [u for u in assets if u.endswith(".js")]
    page_css = [u for u in assets if u.endswith(".css")]
    on_disk = {p.name: p for p in js + list(dist.rglob("*.css"))}
    loaded = [on_disk[u.rsplit("/", 1)[-1]] for u in page_js + page_css if u.rsplit("/", 1)[-1] in on_disk]
    html = next((size for u, size in assets.items() if not u.endswith((".js", ".css"))), 0)
    report = {
        "steps": args.steps,
        "record_s": record_s,
        "charts": int(loads[0]["charts"]),
        "cold_drawn_ms": loads[0]["drawn_ms"],
        "warm_drawn_ms_median": statistics.median(x["drawn_ms"] for x in loads[1:]) if loads[1:] else None,
        "warm_drawn_ms_max": max((x["drawn_ms"] for x in loads[1:]), default=None),
        "warm_response_end_ms_median": statistics.median(x["response_end_ms"] for x in loads[1:])
        if loads[1:]
        else None,
        "html_bytes": html,
        "js_bytes": sum(assets[u] for u in page_js),
        "js_gzip_bytes": sum(gz(p) for p in loaded if p.suffix == ".js"),
        "css_bytes": sum(assets[u] for u in page_css),
        "css_gzip_bytes": sum(gz(p) for p in loaded if p.suffix == ".css"),
        "files": sorted(p.name for p in loaded),
        "loads": loads,
        "load_average": os.getloadavg()[0],
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(
        f"run page, {args.steps} steps of history, {report['charts']} charts (load average {report['load_average']:.1f})"
    )
    print("| load | page HTML (history) | charts drawn after navigation start |")
    print("|---|---|---|")
    print(f"| first (cold cache) | {html / 1024:.0f} KiB | {report['cold_drawn_ms']:.0f} ms |")
    if loads[1:]:
        print(f"| reloads, median of {len(loads) - 1} (max) | | {report['warm_drawn_ms_median']:.0f} ms "
              f"({report['warm_drawn_ms_max']:.0f} ms) |")  # fmt: skip
    print(f"JavaScript: {report['js_bytes'] / 1024:.0f} KiB ({report['js_gzip_bytes'] / 1024:.0f} KiB gzip); "
          f"CSS: {report['css_bytes'] / 1024:.0f} KiB ({report['css_gzip_bytes'] / 1024:.0f} KiB gzip); files {report['files']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
