"""The console's handlers through aiohttp's test client: every page and action signed
in, signed out and with a wrong CSRF token; escaping, sessions, rate limits, links."""

from __future__ import annotations

import json
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from core.storage import SQLiteStore
from core.web.app import attach, standalone_app
from core.web.console import CONSOLE, ConsoleParts
from core.web.auth import make_link_token
from core.web.pages import _signed_in
from tests.web.support import ANN, BOB, LINK_KEY, SCRIPT, TOKEN, Clock, console_app, seed

P = "/console"
PAGES = [
    "/", "/fragments/dashboard", "/conversations", "/conversations?text=tea&platform=telegram", "/conversations/{dm}",
    "/conversations/{dm}/export.json", "/users", "/users?q=ann", f"/users/{ANN}", f"/users/{ANN}/forget",
    "/personas", "/personas/companion", "/moderation", "/audit", "/audit?actor=web:operator", "/plugins", "/settings",
]


@pytest.fixture
async def env(tmp_path):
    """(client, store, ids, library, clock) on a seeded file database; not signed in."""
    clock = Clock()
    async with SQLiteStore(tmp_path / "bot.db", clock=clock) as store:
        ids = await seed(store)
        app, library = console_app(store, clock=clock, persona_dir=tmp_path / "personas")
        async with TestClient(TestServer(standalone_app(app))) as client:
            yield client, store, ids, library, clock


@pytest.fixture(autouse=True)
def persona_folder(tmp_path):
    (tmp_path / "personas").mkdir()


async def sign_in(client) -> str:
    """Sign in with the token; returns the session's CSRF token (read from a page)."""
    response = await client.post(f"{P}/signin", data={"token": TOKEN, "next": f"{P}/"}, allow_redirects=False)
    assert response.status == 303
    page = await (await client.get(f"{P}/")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _path(template: str, ids: dict[str, int]) -> str:
    return P + template.format(**ids)


# -- signed out ---------------------------------------------------------------------------


async def test_every_page_signed_out_redirects_to_sign_in_and_leaks_nothing(env):
    client, _, ids, _, _ = env
    for page in PAGES:
        response = await client.get(_path(page, ids), allow_redirects=False)
        assert response.status == 303, page
        assert response.headers["Location"].startswith(f"{P}/signin?next=")
        assert "message 1" not in await response.text()
    api = await client.get(f"{P}/api/dashboard", allow_redirects=False)
    assert api.status == 401


async def test_every_action_signed_out_is_401_and_changes_nothing(env):
    client, store, ids, library, _ = env
    before = (await store.stats(), library.get("companion"))
    for path, form in _actions(ids, "anything"):
        response = await client.post(P + path, data=form, allow_redirects=False)
        assert response.status == 401, path
    assert (await store.stats(), library.get("companion")) == before
    assert not await store.is_banned(ANN)


def _actions(ids: dict[str, int], csrf: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/users/{ANN}/ban", {"csrf": csrf}),
        (f"/users/{ANN}/unban", {"csrf": csrf}),
        (f"/users/{ANN}/export", {"csrf": csrf}),
        (f"/users/{ANN}/forget", {"csrf": csrf, "confirm": ANN}),
        (f"/users/{ANN}/memories/{ids['memory']}/delete", {"csrf": csrf}),
        ("/personas/companion", {"csrf": csrf, "mode": "form", "description": "changed"}),
        ("/personas/default", {"csrf": csrf, "name": "tutor", "scope": "bot", "target": ""}),
        ("/signout", {"csrf": csrf}),
    ]


# -- signed in ----------------------------------------------------------------------------


async def test_every_page_signed_in(env):
    client, _, ids, _, _ = env
    await sign_in(client)
    for page in PAGES:
        response = await client.get(_path(page, ids))
        assert response.status == 200, page
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
        assert response.headers["Cache-Control"] == "no-store"
    data = await (await client.get(f"{P}/api/dashboard")).json()
    assert data["totals"]["messages"] == 252 and data["live"] is None


async def test_forged_or_missing_csrf_is_403_and_changes_nothing(env):
    client, store, ids, library, _ = env
    csrf = await sign_in(client)
    before = (await store.stats(), library.get("companion"), await store.get_setting("bot", "persona"))
    for forged in ("", "x" + csrf[1:]):
        for path, form in _actions(ids, forged):
            response = await client.post(P + path, data=form, allow_redirects=False)
            assert response.status == 403, path
            assert "CSRF" in await response.text()
    assert (await store.stats(), library.get("companion"), await store.get_setting("bot", "persona")) == before
    assert (await client.get(f"{P}/", allow_redirects=False)).status == 200  # still signed in


async def test_ban_and_unban_are_audited_as_the_web_operator(env):
    client, store, _, _, _ = env
    csrf = await sign_in(client)
    response = await client.post(f"{P}/users/{ANN}/ban", data={"csrf": csrf})
    assert response.status == 200 and await store.is_banned(ANN)
    assert "Banned telegram:1001." in await response.text()
    await client.post(f"{P}/users/{ANN}/unban", data={"csrf": csrf})
    assert not await store.is_banned(ANN)
    entries = await store.find_audit(actor="web:operator", action="web ban")
    assert entries[0].target == ANN and entries[0].detail == {"banned": True, "was_banned": False}
    assert (await store.find_audit(action="web unban"))[0].detail == {"banned": False, "was_banned": True}


async def test_export_a_user_and_a_conversation(env):
    client, store, ids, _, _ = env
    csrf = await sign_in(client)
    response = await client.post(f"{P}/users/{ANN}/export", data={"csrf": csrf})
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(await response.read())
    assert data["format"] == "personabot-export/1" and data["user_id"] == ANN
    assert SCRIPT in [m["text"] for m in data["identities"][0]["messages"]]
    conversation = json.loads(await (await client.get(f"{P}/conversations/{ids['dm']}/export.json")).read())
    assert len(conversation["turns"]) == 250 and conversation["turns"][0]["text"] == SCRIPT
    assert {e.action for e in await store.find_audit(actor="web:operator")} >= {"web export user", "web export conversation"}


async def test_forget_needs_the_id_typed_then_deletes_everything(env):
    client, store, _, _, _ = env
    csrf = await sign_in(client)
    page = await (await client.get(f"{P}/users/{ANN}/forget")).text()
    assert "cannot be undone" in page
    wrong = await client.post(f"{P}/users/{ANN}/forget", data={"csrf": csrf, "confirm": BOB})
    assert wrong.status == 400 and await store.get_user(ANN) is not None
    done = await client.post(f"{P}/users/{ANN}/forget", data={"csrf": csrf, "confirm": ANN})
    assert done.status == 200 and "rows deleted" in await done.text()
    assert await store.get_user(ANN) is None and await store.memories(ANN) == []
    assert await store.find_conversations(user=ANN) == []
    entry = (await store.find_audit(action="forget"))[0]
    assert entry.actor == "web:operator" and entry.detail["rows"] > 250
    assert await store.get_user(BOB) is not None


async def test_delete_a_memory(env):
    client, store, ids, _, _ = env
    csrf = await sign_in(client)
    response = await client.post(f"{P}/users/{ANN}/memories/{ids['memory']}/delete", data={"csrf": csrf})
    assert f"Memory {ids['memory']} deleted." in await response.text()
    assert await store.memories(ANN) == []
    again = await client.post(f"{P}/users/{ANN}/memories/{ids['memory']}/delete", data={"csrf": csrf})
    assert "No such memory." in await again.text()
    assert [e.outcome for e in await store.find_audit(action="web delete memory")] == ["error", "ok"]


async def test_persona_edit_valid_goes_live_and_to_the_folder(env, tmp_path):
    client, store, _, library, _ = env
    csrf = await sign_in(client)
    response = await client.post(
        f"{P}/personas/companion", data={"csrf": csrf, "mode": "form", "description": "A warm friend 朋友"}
    )
    assert response.status == 200 and "saved and active" in await response.text()
    assert library.get("companion").description == "A warm friend 朋友"
    assert (await store.get_persona("companion"))["description"] == "A warm friend 朋友"
    assert 'description = "A warm friend 朋友"' in (tmp_path / "personas" / "companion.toml").read_text()
    assert (await store.find_audit(action="web persona edit"))[0].detail["fields"] == ["description"]


async def test_persona_edit_invalid_shows_the_field_and_keeps_the_old_one(env):
    client, store, _, library, _ = env
    csrf = await sign_in(client)
    old = library.get("companion")
    bad_form = await client.post(f"{P}/personas/companion", data={"csrf": csrf, "mode": "form", "greeting": ""})
    text = await bad_form.text()
    assert bad_form.status == 400 and "persona companion: greeting: String should have at least 1 character" in text
    bad_toml = await client.post(f"{P}/personas/companion", data={"csrf": csrf, "mode": "toml", "toml": "name = 'x"})
    assert bad_toml.status == 400 and "invalid TOML" in await bad_toml.text()
    renamed = await client.post(
        f"{P}/personas/companion", data={"csrf": csrf, "mode": "toml", "toml": 'name = "other"\ndescription = "d"'}
    )
    assert renamed.status == 400 and "name: must stay" in await renamed.text()
    unknown = await client.post(
        f"{P}/personas/companion", data={"csrf": csrf, "mode": "toml", "toml": "description = 'd'\nmood = 1"}
    )
    assert "mood: Extra inputs are not permitted" in await unknown.text()
    assert library.get("companion") == old


async def test_persona_toml_round_trips_and_defaults_are_set(env):
    client, store, _, library, _ = env
    csrf = await sign_in(client)
    page = await (await client.get(f"{P}/personas/tutor")).text()
    toml_text = re.search(r'<textarea name="toml"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    import html

    saved = await client.post(f"{P}/personas/tutor", data={"csrf": csrf, "mode": "toml", "toml": html.unescape(toml_text)})
    assert saved.status == 200 and "saved and active" in await saved.text()
    await client.post(f"{P}/personas/default", data={"csrf": csrf, "name": "tutor", "scope": "bot", "target": ""})
    assert await store.get_setting("bot", "persona") == "tutor"
    await client.post(
        f"{P}/personas/default", data={"csrf": csrf, "name": "support", "scope": "chat", "target": "telegram:-100"}
    )
    assert await store.get_setting("chat:telegram:-100", "persona") == "support"
    missing = await client.post(f"{P}/personas/default", data={"csrf": csrf, "name": "tutor", "scope": "server"})
    assert missing.status == 400
    assert (await store.find_audit(action="web persona default"))[0].target == "chat:telegram:-100"


async def test_stored_html_is_escaped_everywhere(env):
    client, _, ids, _, _ = env
    await sign_in(client)
    for page in (f"/conversations/{ids['dm']}", f"/users/{ANN}", "/users", "/conversations?text=script"):
        text = await (await client.get(P + page)).text()
        assert "<script>window" not in text and "<img src=x" not in text and "<b>bold" not in text, page
    conversation = await (await client.get(f"{P}/conversations/{ids['dm']}")).text()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in conversation
    assert "Ann &lt;b&gt;bold&lt;/b&gt;" in await (await client.get(f"{P}/users/{ANN}")).text()


async def test_long_conversations_page(env):
    client, _, ids, _, _ = env
    await sign_in(client)
    first = await (await client.get(f"{P}/conversations/{ids['dm']}")).text()
    assert first.count('class="turn ') == 100 and "turns 1-100 of 250" in first
    next_url = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = await (await client.get(next_url)).text()
    assert second.count('class="turn ') == 100 and "turns 101-200 of 250" in second and "message 49" in second
    third_url = re.search(r'id="next-page" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    third = await (await client.get(third_url)).text()
    assert third.count('class="turn ') == 50 and 'id="next-page"' not in third and "reply 123" in third
    assert 'id="last-page"' in first and 'id="last-page"' not in third
    newest = await (await client.get(f"{P}/conversations/{ids['dm']}?page=last")).text()
    assert newest.count('class="turn ') == 100 and "turns 151-250 of 250" in newest
    assert newest.rstrip().count("reply 123") == 1 and 'id="next-page"' not in newest


async def test_cookie_flags_and_sign_out(env):
    client, store, _, _, _ = env
    response = await client.post(f"{P}/signin", data={"token": TOKEN}, allow_redirects=False)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path={P}" in cookie and "Secure" not in cookie
    csrf = re.search(r'name="csrf" value="([^"]+)"', await (await client.get(f"{P}/")).text()).group(1)
    out = await client.post(f"{P}/signout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get(f"{P}/users", allow_redirects=False)).status == 303
    assert [e.action for e in await store.find_audit(actor="web:operator", limit=2)] == ["web sign-out", "web sign-in"]


async def test_cookie_is_secure_over_https(env):
    client, *_ = env
    console = client.server.app._subapps[0][CONSOLE]
    request = make_mocked_request("POST", f"{P}/signin").clone(scheme="https")
    response = _signed_in(console, request, f"{P}/")
    assert response.cookies["pb_console"]["secure"] is True


async def test_sessions_expire(env):
    client, _, _, _, clock = env
    await sign_in(client)
    clock.now += 8 * 3600 - 1
    assert (await client.get(f"{P}/users", allow_redirects=False)).status == 200
    clock.now += 2
    assert (await client.get(f"{P}/users", allow_redirects=False)).status == 303


async def test_wrong_tokens_are_rate_limited(env):
    client, store, _, _, _ = env
    for _ in range(5):
        wrong = await client.post(f"{P}/signin", data={"token": "guess"})
        assert wrong.status == 401 and "Wrong token." in await wrong.text()
        assert TOKEN not in await wrong.text()
    limited = await client.post(f"{P}/signin", data={"token": TOKEN}, allow_redirects=False)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    assert "pb_console" not in limited.cookies
    assert len(await store.find_audit(action="web sign-in", outcome="denied")) == 5


async def test_one_time_links(env):
    client, _, _, _, clock = env
    token = make_link_token(LINK_KEY, 600, clock)
    form = await (await client.get(f"{P}/link?t={token}")).text()
    assert "one-time link" in form
    used = await client.post(f"{P}/link", data={"t": token}, allow_redirects=False)
    assert used.status == 303 and "pb_console" in used.cookies
    client.session.cookie_jar.clear()
    assert (await client.post(f"{P}/link", data={"t": token})).status == 401  # once only
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert (await client.post(f"{P}/link", data={"t": forged})).status == 401
    expired = make_link_token(LINK_KEY, 600, lambda: clock.now - 601)
    assert (await client.post(f"{P}/link", data={"t": expired})).status == 401
    other_key = make_link_token(b"z" * 32, 600, clock)
    assert (await client.post(f"{P}/link", data={"t": other_key})).status == 401


async def test_redirects_stay_inside_the_console(env):
    client, *_ = env
    for target in ("//evil.example/", "https://evil.example/", "/elsewhere", f"{P}\\..\\x"):
        response = await client.post(f"{P}/signin", data={"token": TOKEN, "next": target}, allow_redirects=False)
        assert response.headers["Location"] == f"{P}/", target
        client.session.cookie_jar.clear()


async def test_language_from_accept_language_and_the_switch(env):
    client, *_ = env
    await sign_in(client)
    chinese = await (await client.get(f"{P}/users", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})).text()
    assert "用户" in chinese and 'lang="zh-CN"' in chinese
    english = await (await client.get(f"{P}/users", headers={"Accept-Language": "fr, en;q=0.4"})).text()
    assert "Users" in english
    await client.get(f"{P}/lang/en?next={P}/users")
    switched = await (await client.get(f"{P}/users", headers={"Accept-Language": "zh-CN"})).text()
    assert 'lang="en"' in switched


async def test_unknown_things_are_404(env):
    client, *_ = env
    await sign_in(client)
    for page in ("/conversations/999999", "/users/not-an-id", "/personas/nobody", "/lang/xx"):
        assert (await client.get(P + page)).status == 404, page


async def test_before_attach_pages_answer_503(tmp_path):
    async with SQLiteStore(tmp_path / "bot.db") as store:
        app, library = console_app(store, parts=False)
        async with TestClient(TestServer(standalone_app(app))) as client:
            assert (await client.post(f"{P}/signin", data={"token": TOKEN})).status == 503
            attach(app, ConsoleParts(store, library))
            assert (await client.post(f"{P}/signin", data={"token": TOKEN}, allow_redirects=False)).status == 303


async def test_without_a_token_only_links_sign_in(tmp_path):
    async with SQLiteStore(tmp_path / "bot.db") as store:
        app, _ = console_app(store, token=None)
        async with TestClient(TestServer(standalone_app(app))) as client:
            page = await (await client.get(f"{P}/signin")).text()
            assert "personabot web link" in page and 'name="token"' not in page
            assert (await client.post(f"{P}/signin", data={"token": ""})).status == 400


async def test_forget_in_a_running_bot_goes_through_its_personalization_service(tmp_path):
    """There it also stops the user's replies in flight (core.personalization.service)."""

    class Service:
        calls: list[tuple[str, str]] = []

        async def forget(self, user: str, actor: str = "system") -> tuple[list[str], dict[str, int]]:
            self.calls.append((user, actor))
            return [user], {"messages": 3}

    async with SQLiteStore(tmp_path / "bot.db") as store:
        app, library = console_app(store, parts=False)
        service = Service()
        attach(app, ConsoleParts(store, library, personalization=service))
        async with TestClient(TestServer(standalone_app(app))) as client:
            csrf = await sign_in(client)
            done = await client.post(f"{P}/users/{ANN}/forget", data={"csrf": csrf, "confirm": ANN})
            assert done.status == 200 and "3 rows deleted" in await done.text()
    assert service.calls == [(ANN, "web:operator")]
