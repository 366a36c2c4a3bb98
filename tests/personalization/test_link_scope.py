"""Cross-platform identity links, and which memories reach which prompt."""

from core.personalization.privacy import normalize_code
from tests.personalization.helpers import context_facts, personal_app, say

TG, DC, GROUP = "telegram:1", "discord:9", "-100"


async def link(app, first=TG, second=DC) -> str:
    text = (await say(app, "/link", user=first)).last
    code = text.split("Your link code: ")[1].split()[0]
    return (await say(app, f"/link {code}", user=second)).last


async def test_link_joins_two_platforms_into_one_profile_with_shared_memories():
    async with personal_app() as app:
        await say(app, "I live in Berlin", user=TG)
        await say(app, "/profile set tone formal", user=TG)
        await say(app, "/privacy training on", user=TG)
        await say(app, "I have a dog named Rex", user=DC)
        assert (await link(app)).startswith(f"Linked with {TG}.")
        assert await app.store.linked_identities(TG) == [DC, TG]
        await say(app, "where do I live? and my dog?", user=DC)
        assert set(context_facts(app)) == {"I live in Berlin.", "I have a dog named Rex."}
        # preferences are shared; consent stays on only where both had it on
        for user in (TG, DC):
            profile = await app.store.get_profile(user)
            assert profile.preferences["tone"] == "formal"
            assert profile.consent["training"] is False
        # a newer fact on either platform supersedes the older one for both
        await say(app, "I moved to Paris", user=DC)
        await say(app, "where do I live?", user=TG)
        facts = context_facts(app)
        assert "I live in Paris." in facts and "I live in Berlin." not in facts
        assert "Linked accounts: discord:9" in (await say(app, "/profile", user=TG)).last


async def test_unlink_splits_them_again():
    async with personal_app() as app:
        await say(app, "I live in Berlin", user=TG)
        await say(app, "I have a dog named Rex", user=DC)
        await link(app)
        assert "Unlinked from" in (await say(app, "/unlink", user=DC)).last
        assert await app.store.linked_identities(DC) == [DC]
        await say(app, "where do I live? and my dog?", user=DC)
        assert context_facts(app) == ["I have a dog named Rex."]
        assert "not linked" in (await say(app, "/unlink", user=DC)).last


async def test_codes_are_single_use_and_expire_and_refusals_reveal_nothing():
    async with personal_app(link_code_ttl_s=60) as app:
        text = (await say(app, "/link", user=TG)).last
        code = text.split("Your link code: ")[1].split()[0]
        refusal = (await say(app, "/link ABCD-EFGH", user=DC)).last
        assert "That code is not valid" in refusal
        assert (await say(app, f"/link {code}", user=TG)).last == refusal  # own code: same answer
        code = (await say(app, "/link", user=TG)).last.split("Your link code: ")[1].split()[0]
        assert (await say(app, f"/link {code.lower()}", user=DC)).last.startswith("Linked")
        assert (await say(app, f"/link {code}", user="discord:10")).last == refusal  # used up
        # expired: the same answer as a code that never existed
        app.services.personalization.links.clock = lambda: 1e12
        code = (await say(app, "/link", user="telegram:5")).last.split("Your link code: ")[1].split()[0]
        app.services.personalization.links.clock = lambda: 1e12 + 61
        assert (await say(app, f"/link {code}", user="discord:11")).last == refusal
        assert await app.store.linked_identities("telegram:5") == ["telegram:5"]


async def test_a_new_code_replaces_the_old_one():
    async with personal_app() as app:
        first = (await say(app, "/link", user=TG)).last.split("Your link code: ")[1].split()[0]
        await say(app, "/link", user=TG)
        assert "not valid" in (await say(app, f"/link {first}", user=DC)).last


async def test_guessing_is_limited_per_user():
    async with personal_app(link_attempts_per_hour=3) as app:
        for _ in range(3):
            assert "not valid" in (await say(app, "/link AAAA-AAAA", user=DC)).last
        code = (await say(app, "/link", user=TG)).last.split("Your link code: ")[1].split()[0]
        assert "Too many wrong codes" in (await say(app, f"/link {code}", user=DC)).last


def test_codes_are_normalised():
    assert normalize_code("abcd-efgh") == "ABCDEFGH"
    assert normalize_code(" ABCD EFGH ") == "ABCDEFGH"
    assert normalize_code("ABCD-EFG1") is None  # 1 is not in the alphabet
    assert normalize_code("ABC") is None and normalize_code("ＡＢＣＤＥＦＧＨ") is None


async def test_dm_memories_stay_out_of_groups_unless_the_user_allows_it():
    async with personal_app() as app:
        await say(app, "I'm allergic to peanuts")  # DM
        await say(app, "I have a dog named Rex", chat=GROUP, group=True)  # said in the group
        await say(app, "what about my peanut allergy and my dog", chat=GROUP, group=True)
        assert context_facts(app) == ["I have a dog named Rex."]
        await say(app, "/privacy groups on")
        await say(app, "what about my peanut allergy and my dog", chat=GROUP, group=True)
        assert set(context_facts(app)) == {"I am allergic to peanuts.", "I have a dog named Rex."}
        await say(app, "what about my peanut allergy", chat=None)  # DMs always use both
        assert "I am allergic to peanuts." in context_facts(app)


async def test_one_users_memories_never_reach_another_users_prompt():
    async with personal_app() as app:
        await say(app, "My name is Ann. I'm allergic to peanuts. I live in Berlin.", user=TG, chat=GROUP, group=True)
        await say(app, "/privacy groups on", user=TG)
        await say(app, "/profile set name Annie", user=TG)
        for chat, group in ((GROUP, True), (None, False)):
            await say(app, "what is my name, where do I live, any allergy?", user="telegram:2", chat=chat, group=group)
            prompt = app.generator.requests[-1].messages
            context = context_facts(app)
            assert context == []
            assert not any("Annie" in m.content for m in prompt)
            if not group:  # in the DM nothing of telegram:1 is in the prompt at all
                assert not any("peanuts" in m.content for m in prompt)
