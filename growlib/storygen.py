"""A seeded generator of simple children's stories: the offline default corpus (synthetic).

Taught in notebook 01. When TinyStories cannot be had, growlib trains on these
instead and says so. Each story has characters (children and animals), a
place, an object, a feeling, a problem and its resolution, some dialogue and a
moral, drawn from word lists and sentence patterns, so the text is varied
enough that a small model keeps improving for thousands of steps, yet regular
enough that it learns grammar quickly. It is *synthetic*, labelled so wherever
it is used, and never a substitute for reporting results on real text.
"""

from __future__ import annotations

import random

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sara", "Max", "Anna", "Sam", "Lucy", "Jack", "Emma", "Leo",
         "Zoe", "Tim", "Ella", "Finn", "Ruby", "Noah", "Amy", "Jake", "Rosa", "Omar", "Ivy", "Kai",
         "Nora", "Eli", "Maya", "Hugo", "Lena", "Theo", "Aria", "Milo", "Chloe", "Ravi", "Daisy", "Oscar"]
TRAITS = ["kind", "curious", "brave", "shy", "funny", "clever", "gentle", "busy", "sleepy", "cheerful"]
TIMES = ["In the morning,", "After lunch,", "Later that day,", "The next day,", "Before dinner,",
         "One afternoon,", "Soon,", "After a while,"]
SIGHTS = ["a rainbow in the sky", "a big red barn", "a line of busy ants", "a boat on the water",
          "a nest with three eggs", "a tall tower of clouds", "a puppy with a bow", "a shiny coin",
          "a butterfly with blue wings", "a snail on a leaf", "a funny hat on a snowman", "an old wooden gate"]
ANIMALS = [("dog", "Spot"), ("cat", "Kitty"), ("bunny", "Hop"), ("bird", "Tweet"), ("frog", "Ribbit"),
           ("duck", "Quack"), ("bear", "Fuzzy"), ("fox", "Red"), ("mouse", "Squeak"), ("owl", "Hoot"),
           ("turtle", "Shelly"), ("puppy", "Buddy"), ("lamb", "Snowy"), ("pig", "Pinky"), ("horse", "Star")]
PLACES = [("the park", "under a big tree"), ("the garden", "near the flowers"), ("the beach", "by the water"),
          ("the forest", "behind a log"), ("the farm", "next to the barn"), ("the lake", "on the shore"),
          ("the school", "in the yard"), ("the house", "in the kitchen"), ("the hill", "at the top"),
          ("the zoo", "by the fence"), ("the town", "in the market"), ("the meadow", "in the tall grass")]
OBJECTS = [("ball", "red"), ("kite", "blue"), ("toy car", "shiny"), ("hat", "yellow"), ("book", "old"),
           ("cake", "sweet"), ("box", "big"), ("doll", "soft"), ("boat", "little"), ("drum", "loud"),
           ("apple", "juicy"), ("flower", "pretty"), ("shell", "smooth"), ("crayon", "green"),
           ("blanket", "warm"), ("key", "tiny"), ("cup", "pink"), ("bike", "fast")]
HAPPY = ["happy", "excited", "proud", "glad", "cheerful", "calm"]
SAD = ["sad", "scared", "worried", "angry", "lonely", "upset"]
WEATHER = ["It was a sunny day.", "The sky was gray and it was raining.", "It was a windy morning.",
           "The snow was soft and white.", "It was a warm evening.", "The sun was bright and hot."]
ACTIVITIES = ["play tag", "build a sand castle", "look for bugs", "sing songs", "draw pictures",
              "jump in puddles", "fly a kite", "pick berries", "have a picnic", "read a story",
              "make a tower of blocks", "splash in the water", "chase butterflies", "bake cookies"]
PROBLEMS = [
    ("the {animal} got sick", "took the {animal} to the vet and it felt better",
     "gave the {animal} warm milk and a soft bed"),
    ("{friend} fell and hurt a knee", "helped {friend} up and got a bandage",
     "held {friend}'s hand and walked home slowly"),
    ("it got dark and they could not find the way home", "followed the lights of the houses",
     "asked a nice lady who showed them the way"),
    ("the {obj} was too high to reach", "stood on a chair and reached the {obj}",
     "asked Dad to get the {obj}"),
    ("the {obj} got stuck in a tree", "climbed a ladder and got the {obj} down",
     "asked a tall friend for help"),
    ("the {obj} fell into the water", "used a long stick to pull the {obj} out",
     "waited for the water to bring it back"),
    ("{friend} took the {obj} without asking", "talked to {friend} and they agreed to share",
     "told {friend} how it felt and {friend} said sorry"),
    ("the {obj} broke into two pieces", "fixed the {obj} with some glue",
     "made something new from the pieces"),
    ("the {obj} was lost", "looked everywhere and found the {obj} under the bed",
     "followed little tracks and found it"),
    ("a big storm came", "went inside and waited until the sun came back",
     "hid under a blanket and told stories"),
    ("{friend} was too shy to play", "invited {friend} to join the game",
     "gave {friend} a turn first"),
    ("the {animal} ran away", "called the {animal} and it came running back",
     "put out some food and the {animal} came home"),
]
MORALS = ["Sharing makes everyone happy.", "It is good to ask for help.", "Saying sorry can fix a lot.",
          "Being kind is the best thing to do.", "Friends help each other.", "Never give up.",
          "It is okay to feel scared sometimes.", "Taking turns is fair.", "Listening is important.",
          "Little things can make a big difference."]
SAY_HAPPY = ["Thank you!", "This is the best day ever!", "I love you!", "We did it!", "Let's play again!",
             "You are my best friend!"]
SAY_ASK = ["Can you help me?", "What should we do?", "Do you want to play?", "Where did it go?",
           "Is it okay?", "Can I try?"]


def _story(rng: random.Random) -> str:
    hero, friend = rng.sample(NAMES, 2)
    animal, pet_name = rng.choice(ANIMALS)
    place, spot = rng.choice(PLACES)
    obj, adj = rng.choice(OBJECTS)
    problem, fix, alt_fix = rng.choice(PROBLEMS)
    fill = dict(obj=obj, friend=friend, animal=animal)
    problem, fix, alt_fix = (s.format(**fill) for s in (problem, fix, alt_fix))
    happy, sad = rng.choice(HAPPY), rng.choice(SAD)
    kid = rng.choice(["girl", "boy"])
    he, his = ("she", "her") if kid == "girl" else ("he", "his")
    moral = rng.choice(MORALS)
    opening = rng.choice([
        f"Once upon a time, there was a little {kid} named {hero}.",
        f"One day, {hero} went to {place} with {his} {animal}, {pet_name}.",
        f"{hero} had a {adj} {obj}. {he.capitalize()} loved it very much.",
        f"There was a {animal} named {pet_name} who lived in {place}.",
    ])
    lines = [opening, rng.choice(WEATHER)]
    lines.append(rng.choice([
        f"{hero} and {friend} wanted to {rng.choice(ACTIVITIES)} {spot}.",
        f"{hero} liked to {rng.choice(ACTIVITIES)} with {pet_name} the {animal}.",
        f"{he.capitalize()} found a {adj} {obj} {spot}.",
    ]))
    if rng.random() < 0.6:
        lines.append(f"{rng.choice(TIMES)} they saw {rng.choice(SIGHTS)}.")
    if rng.random() < 0.5:
        lines.append(f"{hero} was a {rng.choice(TRAITS)} {kid}, and {friend} was very {rng.choice(TRAITS)}.")
    lines.append(f"But then {problem}. {hero} felt {sad}.")
    lines.append(f'"{rng.choice(SAY_ASK)}" {hero} said to {rng.choice([friend, pet_name, "Mom", "Dad"])}.')
    if rng.random() < 0.5:
        lines.append(f'"Do not be {sad}," said {friend}. "I have an idea."')
    lines.append(f"So {hero} {rng.choice([fix, alt_fix])}.")
    lines.append(rng.choice([
        f"{hero} felt {happy} again.", f"Everyone was {happy}.",
        f"{hero} and {friend} smiled and hugged.", f"{pet_name} wagged and jumped with joy.",
    ]))
    lines.append(f'"{rng.choice(SAY_HAPPY)}" said {hero}.')
    if rng.random() < 0.7:
        lines.append(rng.choice([
            f"From that day on, {hero} knew that {moral[0].lower()}{moral[1:]}",
            f"The moral of the story is: {moral}",
            f"{hero} learned that {moral[0].lower()}{moral[1:]}",
        ]))
    return " ".join(lines)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` synthetic stories, the same for the same seed."""
    rng = random.Random(seed)
    return [_story(rng) for _ in range(n)]
