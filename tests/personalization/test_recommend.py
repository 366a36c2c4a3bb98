"""Catalog validation and /recommend ranking by P(u,i)."""

import pytest

from core.errors import ConfigError
from core.events import CommandCall
from core.personalization.catalog import Catalog
from core.personalization.scoring import smoothed_similarity
from core.catalog import CatalogItem
from core.personalization.settings import load_personalization
from tests.conftest import make_settings
from tests.personalization.helpers import CATALOG, HashingEmbedder, personal_app, say


async def test_items_are_ranked_by_p_against_the_interest_vector():
    embedder = HashingEmbedder()
    catalog = await Catalog.build([CatalogItem.model_validate(item) for item in CATALOG], embedder)
    interest = embedder.vector("jazz music albums guitar songs")
    picks = catalog.recommend(interest, alpha=0.1, count=3)
    expected = smoothed_similarity(interest, catalog.vectors, 0.1)
    assert [p.score for p in picks] == pytest.approx(sorted(expected, reverse=True)[:3])
    assert {p.item.id for p in picks[:2]} == {"guitar-chords-for-beginners", "jazz-listening-guide"}
    assert picks[0].reason.startswith("matches your interest in ")


async def test_items_already_seen_are_down_weighted_not_hidden():
    embedder = HashingEmbedder()
    catalog = await Catalog.build([CatalogItem.model_validate(item) for item in CATALOG], embedder)
    interest = embedder.vector("jazz music albums")
    fresh = catalog.recommend(interest, alpha=0.1, count=len(CATALOG))
    top = fresh[0]
    again = catalog.recommend(interest, alpha=0.1, count=len(CATALOG), seen={top.item.id: 2}, seen_penalty=0.5)
    moved = next(p for p in again if p.item.id == top.item.id)
    assert moved.score == pytest.approx(top.score * 0.25)
    assert "(suggested before)" in moved.reason
    assert catalog.recommend(None, alpha=0.1, count=3) == []


async def test_recommend_command_uses_what_the_user_talks_about():
    async with personal_app() as app:
        assert "Tell me a bit about yourself" in (await say(app, "/recommend")).last
        for text in ["I love cooking vegetables", "cooking dinner tonight, chop vegetables", "bake bread in the oven"]:
            await say(app, text)
        answer = (await say(app, "/recommend 2")).last
        lines = answer.splitlines()
        assert lines[0] == "For you:" and len([line for line in lines if line[:2] in ("1.", "2.")]) == 2
        assert "Knife skills for home cooks" in answer and "Baking bread at home" in answer
        assert "A persona that suits you:" in answer
        seen = await app.store.get_setting("user:telegram:1", "catalog_seen")
        assert seen is not None and "knife-skills-for-home-cooks" in seen
        assert all(reply.private for reply in (await say(app, "/recommend")).replies)


@pytest.mark.parametrize("count", ["0", "11", "many", "-1"])
async def test_recommend_count_is_validated(count):
    async with personal_app() as app:
        assert "Give a number from 1 to 10" in (await say(app, f"/recommend {count}")).last


def test_catalog_and_options_are_validated_naming_the_field():
    good = make_settings(catalog=[{"title": "Intro to Python!", "tags": ["code"]}], personalization={"alpha": 0.5})
    options, items = load_personalization(good)
    assert options.alpha == 0.5 and items[0].id == "intro-to-python"
    assert CatalogItem(title="中文 课程").id == "中文-课程"
    cases = [
        ({"personalization": {"alpha": -1}}, "personalization.alpha"),
        ({"personalization": {"alhpa": 1}}, "personalization.alhpa"),
        ({"catalog": [{"title": ""}]}, "catalog.0.title"),
        ({"catalog": [{"title": "A", "tags": [""]}]}, "catalog.0.tags"),
        ({"catalog": [{"title": "A"}, {"title": "a"}]}, "catalog.1.id: duplicate id 'a'"),
        ({"personalization": {"recommend_default": 5, "recommend_max": 3}}, "recommend_default"),
    ]
    for overrides, field in cases:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_personalization(make_settings(**overrides))


async def test_a_disabled_feature_registers_nothing():
    async with personal_app(enabled=False) as app:
        assert app.commands.find(CommandCall("recommend")) is None
        assert app.seams.prompt_contributors == [] and app.seams.turn_observers == []


async def test_personas_are_ranked_by_p_against_the_interest_vector():
    async with personal_app() as app:
        feature = app.services.personalization
        for persona in app.personas.all():
            text = f"{persona.title}. {persona.description} {persona.style}"
            assert feature.best_persona(app.embedder.loaded.vector(text)).name == persona.name
