"""A story world: synthetic stories about a fixed cast whose facts stay the same in every story.

The bundled stories of :mod:`growlib.storygen` draw every name, pet and place
afresh per story, so a model needs only the story's own context to predict them:
a 1 M-parameter model learns that corpus almost to its floor, and a bigger model
has nothing left to learn. Here the cast is fixed: ``WORLD_SIZE`` characters,
each with a family name, a home town, a pet (kind and name), a treasured object
(and its colour), a favourite food, a trait, a best friend and a grandparent's
trade. A story opens by naming its hero in full, then uses those facts; the first
time a fact appears in a story only a model that remembers the character can
predict it. Remembering ~10 facts about each of 600 characters takes capacity
that a small model lacks and a grown one has, which is what ``compare`` needs to
show whether growth pays (notebook 04).

It is *synthetic*, labelled so wherever it is used, and never a stand-in for
results on real text. The same ``world_seed`` always gives the same cast;
``seed`` draws which stories are told about it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .storygen import (ANIMALS, BOYS, COLORS, FOODS, GIRLS, HAPPY, PET_NAMES, PLACES, OBJECTS, SAD, TRAITS,
                       _ending, _problem_and_fix)

WORLD_SIZE = 600
FAMILIES = ["Ashby", "Brook", "Carver", "Dale", "Ellis", "Fenwick", "Garner", "Hale", "Ingram", "Jarvis",
            "Keller", "Lowry", "Marsh", "Norwood", "Oakley", "Pruitt", "Quill", "Radley", "Sutton", "Thorne",
            "Upton", "Vance", "Whitlock", "Yardley", "Abbott", "Bishop", "Crane", "Dawson", "Finch", "Greer"]
TOWNS = ["Maple Hollow", "Pinecrest", "Willowby", "Stonebridge", "Clearwater", "Foxglen", "Amberfield",
         "Brightmoor", "Cedar Bend", "Dunmore", "Elmsworth", "Fairhaven", "Goldbrook", "Hazelton", "Ivydale",
         "Juniper Falls", "Kingsley", "Larkspur", "Millbrook", "Northwick", "Oldcastle", "Primrose",
         "Queensbury", "Redcliff", "Silverlake", "Thistledown", "Underhill", "Valewood", "Westbury", "Yewford"]
TRADES = ["baker", "fisher", "farmer", "painter", "doctor", "sailor", "builder", "teacher", "gardener",
          "tailor", "potter", "beekeeper", "clockmaker", "mail carrier", "cook", "carpenter"]


@dataclass(frozen=True)
class Character:
    """One member of the cast: everything a story may say about them, fixed for the world."""

    first: str
    family: str
    girl: bool
    town: str
    place: int  # index into storygen.PLACES: where they like to go
    animal: str
    pet: str
    obj: str
    color: str
    food: str
    trait: str
    trade: str  # the grandparent's
    friend: int  # index of the best friend in the cast

    @property
    def name(self) -> str:
        return f"{self.first} {self.family}"


def make_cast(n: int = WORLD_SIZE, world_seed: int = 0) -> list[Character]:
    """``n`` characters with distinct full names; best friends are mutual where the pairing allows."""
    rng = random.Random(world_seed)
    names = [(f, fam, girl) for fam in FAMILIES for girl, pool in ((True, GIRLS), (False, BOYS)) for f in pool]
    if n > len(names):
        raise ValueError(f"story world of {n} characters is invalid: accepted 1..{len(names)}")
    rng.shuffle(names)
    order = list(range(n))
    rng.shuffle(order)
    friend = {}
    for a, b in zip(order[0::2], order[1::2]):  # pairs of best friends; an odd one out befriends the first
        friend[a], friend[b] = b, a
    if n % 2:
        friend[order[-1]] = order[0] if n > 1 else order[-1]
    return [Character(first, fam, girl, rng.choice(TOWNS), rng.randrange(len(PLACES)), rng.choice(ANIMALS),
                      rng.choice(PET_NAMES), rng.choice(OBJECTS), rng.choice(COLORS), rng.choice(FOODS),
                      rng.choice(TRAITS), rng.choice(TRADES), friend[i])
            for i, (first, fam, girl) in enumerate(names[:n])]


def _facts(rng: random.Random, h: Character, f: Character) -> list[str]:
    """Sentences that state the hero's facts, in a random order: each costs a model memory to predict."""
    he, his = ("she", "her") if h.girl else ("he", "his")
    place = PLACES[h.place][0]
    facts = [
        f"{h.first} lived in {h.town} with {his} {h.animal}, {h.pet}.",
        f"{his.capitalize()} best friend was {f.name} from {f.town}.",
        f"{h.first} loved {his} {h.color} {h.obj} more than anything.",
        f"{his.capitalize()} favorite food was {h.food}.",
        f"{his.capitalize()} grandpa was a {h.trade} in {h.town}.",
        f"Every week, {h.first} went to {place} with {h.pet} the {h.animal}.",
    ]
    rng.shuffle(facts)
    return facts[:rng.randint(3, len(facts))]


def _cast_of(h: Character, f: Character, rng: random.Random) -> dict:
    """The slots storygen's middle and ending fill, taken from the world instead of drawn."""
    from .storygen import PROBLEMS

    he, his = ("she", "her") if h.girl else ("he", "his")
    place, spots = PLACES[h.place]
    problem, fixes = rng.choice(PROBLEMS)
    fill = dict(o=h.obj, f=f.first, a=h.animal, p=h.pet, h=h.first)
    return dict(hero=h.first, friend=f.first, kid="girl" if h.girl else "boy", he=he, his=his, animal=h.animal,
                pet=h.pet, place=place, spots=spots, obj=h.obj, look=h.color, trait=h.trait, ftrait=f.trait,
                happy=rng.choice(HAPPY), sad=rng.choice(SAD), problem=problem.format(**fill), fixes=fixes,
                fill=fill, a_or_an="an" if h.color[0] in "aeiou" else "a")


def _story(rng: random.Random, cast: list[Character]) -> str:
    h = rng.choice(cast)
    f = cast[h.friend]
    c = _cast_of(h, f, rng)
    opening = rng.choice([f"Once upon a time, there was a {h.trait} {c['kid']} named {h.name}.",
                          f"This is a story about {h.name}, a {h.trait} {c['kid']}.",
                          f"{h.name} was a {h.trait} {c['kid']}."])
    middle = [f"One day, {h.first} and {f.first} took the {h.color} {h.obj} to {c['place']}."]
    return " ".join([opening] + _facts(rng, h, f) + middle + _problem_and_fix(rng, c) + _ending(rng, c))


def generate_world_stories(n: int, seed: int = 0, world_size: int = WORLD_SIZE, world_seed: int = 0) -> list[str]:
    """``n`` stories about the cast of ``make_cast(world_size, world_seed)``, the same for the same seeds."""
    cast = make_cast(world_size, world_seed)
    rng = random.Random(seed)
    return [_story(rng, cast) for _ in range(n)]
