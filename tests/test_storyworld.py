"""The story world: a fixed cast whose facts every story keeps, labelled synthetic."""


import pytest

from growlib.sources import open_source
from growlib.storyworld import WORLD_SIZE, generate_world_stories, make_cast


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GROWLIB_DATA_DIR", str(tmp_path / "data"))


def test_the_cast_is_fixed_by_its_seed_with_distinct_names_and_mutual_friends():
    cast = make_cast()
    assert len(cast) == WORLD_SIZE == 600
    assert cast == make_cast() and cast != make_cast(world_seed=1)
    assert len({c.name for c in cast}) == WORLD_SIZE
    assert sum(cast[c.friend].friend == i for i, c in enumerate(cast)) == WORLD_SIZE  # 600 is even: all mutual
    assert all(c.friend != i for i, c in enumerate(cast))


def test_every_story_states_its_heros_facts_as_the_world_has_them():
    cast = make_cast()
    by_name = {c.name: c for c in cast}
    stories = generate_world_stories(500, seed=3)
    assert stories == generate_world_stories(500, seed=3) and len(set(stories)) == 500
    checked = 0
    for story in stories:
        opening = story.split(".")[0]
        (hero,) = [c for name, c in by_name.items() if name in opening]
        assert f"a {hero.trait} {'girl' if hero.girl else 'boy'}" in opening
        facts = {"best friend was": f"best friend was {cast[hero.friend].name} from {cast[hero.friend].town}.",
                 "favorite food was": f"favorite food was {hero.food}.",
                 "grandpa was a": f"grandpa was a {hero.trade} in {hero.town}.",
                 f"{hero.first} lived in": f"{hero.first} lived in {hero.town} with",
                 "more than anything": f"{hero.color} {hero.obj} more than anything."}
        for cue, fact in facts.items():
            if cue in story:
                assert fact in story, (fact, story)
                checked += 1
    assert checked >= 3 * 500  # 3 to 6 of the 6 facts per story: about 3.75 of these 5 on average


def test_world_source_is_labelled_synthetic_and_too_big_a_world_is_refused():
    source = open_source("world", verbose=False)
    assert source.spec == "world" and "synthetic story world" in source.label and "not TinyStories" in source.label
    with pytest.raises(ValueError, match="story world of 5000 characters is invalid: accepted 1..2160"):
        make_cast(5000)
