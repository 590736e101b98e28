"""The playground's pages: the question box on a checkpoint (works without JavaScript), a session's page
with its history embedded, the refusals, and the "Try it" links where checkpoints are listed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.playground import services
from webapp.playground.models import PlaygroundSession
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _config(response: object) -> dict[str, object]:
    text = response.content.decode()  # type: ignore[attr-defined]
    start = text.index('id="playground-config"')
    body = text[text.index(">", start) + 1 : text.index("</script>", start)]
    return dict(json.loads(body))


def test_the_question_page_shows_the_box_examples_and_an_empty_state(alice: User, trained: Callable[..., Run]) -> None:
    run = trained(alice)
    response = client_for(alice).get(f"/runs/{run.pk}/checkpoints/latest/try/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="question"' in page and 'maxlength="2000"' in page and "Ask both models" in page
    assert "step 2" in page and run.base_model.display_name in page
    assert "The trained agent's answer appears here" in page
    assert "data-example=" in page  # questions of the run's data, with their answers as a hint
    assert f'action="/runs/{run.pk}/checkpoints/2/try/"' in page
    assert _config(response) == {"session_id": None}


def test_asking_from_the_page_redirects_to_the_sessions_page(alice: User, trained: Callable[..., Run]) -> None:
    run = trained(alice)
    client = client_for(alice)
    response = client.post(f"/runs/{run.pk}/checkpoints/latest/try/", {"question": "  How old is Senna?  "})
    session = PlaygroundSession.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/playground/{session.pk}/"
    assert session.question == "How old is Senna?" and session.checkpoint.step == 2
    services.event_record(session_id=session.pk, side="trained", kind="model", data={"text": "Senna was"})
    page = client.get(f"/playground/{session.pk}/")
    assert (
        page.status_code == 200
        and "How old is Senna?" in page.content.decode()
        and "Ask again" in page.content.decode()
    )
    config = _config(page)
    assert config["ws_url"] == f"/ws/playground/{session.pk}/" and config["last_seq"] == 1
    assert config["events"] == [
        {"seq": 1, "type": "playground.model", "side": "trained", "data": {"text": "Senna was"}}
    ]


def test_an_empty_question_shows_the_reason_on_the_page_and_stores_nothing(
    alice: User, trained: Callable[..., Run]
) -> None:
    run = trained(alice)
    response = client_for(alice).post(f"/runs/{run.pk}/checkpoints/latest/try/", {"question": "   "})
    assert response.status_code == 400 and "Type a question for the agent." in response.content.decode()
    assert not PlaygroundSession.objects.exists()


def test_a_second_question_while_one_runs_says_so_and_links_to_it(alice: User, trained: Callable[..., Run]) -> None:
    run = trained(alice)
    client = client_for(alice)
    client.post(f"/runs/{run.pk}/checkpoints/latest/try/", {"question": "first"})
    running = PlaygroundSession.objects.get()
    response = client.post(f"/runs/{run.pk}/checkpoints/1/try/", {"question": "second"})
    page = response.content.decode()
    assert response.status_code == 409 and "being answered already" in page
    assert f'href="/playground/{running.pk}/"' in page and ">second</textarea>" in page
    assert PlaygroundSession.objects.count() == 1


def test_outsiders_get_404_for_the_question_page_and_the_session(
    alice: User, charlie: User, trained: Callable[..., Run]
) -> None:
    run = trained(alice)
    client_for(alice).post(f"/runs/{run.pk}/checkpoints/latest/try/", {"question": "mine"})
    session = PlaygroundSession.objects.get()
    outsider = client_for(charlie)
    for response in (
        outsider.get(f"/runs/{run.pk}/checkpoints/latest/try/"),
        outsider.post(f"/runs/{run.pk}/checkpoints/latest/try/", {"question": "theirs"}),
        outsider.get(f"/playground/{session.pk}/"),
    ):
        assert response.status_code == 404 and run.name not in response.content.decode()
    assert PlaygroundSession.objects.count() == 1


def test_a_pruned_step_is_a_404_page(alice: User, trained: Callable[..., Run]) -> None:
    run = trained(alice)
    assert client_for(alice).get(f"/runs/{run.pk}/checkpoints/9/try/").status_code == 404


def test_the_checkpoints_list_and_the_run_pages_checkpoints_offer_try_it(
    alice: User, trained: Callable[..., Run]
) -> None:
    run = trained(alice)
    client = client_for(alice)
    listing = client.get(f"/runs/{run.pk}/checkpoints/").content.decode()
    assert (
        f'href="/runs/{run.pk}/checkpoints/2/try/"' in listing
        and f'href="/runs/{run.pk}/checkpoints/1/try/"' in listing
    )
    detail = client.get(f"/runs/{run.pk}/").content.decode()
    assert f"/runs/{run.pk}/checkpoints/2/try/" in detail  # in the checkpoint events the live page draws
