"""A seeded generator of simple children's stories: the offline default corpus (synthetic).

Taught in notebook 01. When TinyStories cannot be had, growlib trains on these
instead and says so. A story follows the shape of a TinyStories story: it
introduces characters (children and animals, each with a trait), a place and a
cherished object, wanders through a few events, meets a problem, fails once or
twice, resolves it (often with help and dialogue), names a feeling and ends on a
moral. Every slot is drawn from word lists and sentence patterns, and the
characters' names, pronouns and objects stay consistent through the story, so
the text has the long-range structure a model must learn, with enough
combinations that a small model keeps improving for thousands of steps.
It is *synthetic*, labelled so wherever it is used, and never a stand-in for
results on real text.
"""

from __future__ import annotations

import random

GIRLS = ["Lily", "Mia", "Sara", "Anna", "Lucy", "Emma", "Zoe", "Ella", "Ruby", "Amy", "Rosa", "Ivy", "Nora",
         "Maya", "Lena", "Aria", "Chloe", "Daisy", "Sophie", "Grace", "Hannah", "Julia", "Kate", "Molly",
         "Nina", "Olive", "Pia", "Rita", "Stella", "Tess", "Uma", "Vera", "Wendy", "Alice", "Bella", "Clara"]
BOYS = ["Tom", "Ben", "Max", "Sam", "Jack", "Leo", "Tim", "Finn", "Noah", "Jake", "Omar", "Kai", "Eli",
        "Hugo", "Theo", "Milo", "Ravi", "Oscar", "Adam", "Bob", "Carl", "Dan", "Evan", "Fred", "Gus", "Henry",
        "Ian", "Joe", "Luke", "Mark", "Ned", "Owen", "Paul", "Ray", "Seth", "Ted"]
ANIMALS = ["dog", "cat", "bunny", "bird", "frog", "duck", "bear", "fox", "mouse", "owl", "turtle", "puppy",
           "lamb", "pig", "horse", "kitten", "squirrel", "hen", "goat", "cow", "deer", "bee", "fish", "monkey",
           "lion", "tiger", "elephant", "giraffe", "snail", "ladybug"]
PET_NAMES = ["Spot", "Kitty", "Hop", "Tweet", "Ribbit", "Quack", "Fuzzy", "Red", "Squeak", "Hoot", "Shelly",
             "Buddy", "Snowy", "Pinky", "Star", "Max", "Bella", "Coco", "Pip", "Sunny", "Biscuit", "Muffin",
             "Pepper", "Ginger", "Button", "Bubbles", "Patch", "Lucky", "Daisy", "Rusty"]
PLACES = [("the park", ["under a big tree", "by the swings", "near the pond", "on the grass"]),
          ("the garden", ["near the flowers", "behind the shed", "by the carrots", "under the bush"]),
          ("the beach", ["by the water", "in the sand", "near the rocks", "under an umbrella"]),
          ("the forest", ["behind a log", "by a little stream", "under the pine trees", "near a big rock"]),
          ("the farm", ["next to the barn", "by the fence", "in the hay", "near the pigs"]),
          ("the lake", ["on the shore", "on the dock", "by the reeds", "near the boats"]),
          ("school", ["in the yard", "in the classroom", "by the slide", "near the gate"]),
          ("the house", ["in the kitchen", "under the table", "in the living room", "on the stairs"]),
          ("the hill", ["at the top", "on the slope", "by the old tree", "in the wind"]),
          ("the zoo", ["by the fence", "near the lions", "by the pond", "at the gate"]),
          ("the town", ["in the market", "by the shop", "on the street", "near the bakery"]),
          ("the meadow", ["in the tall grass", "among the daisies", "by the stream", "under the sun"]),
          ("the library", ["between the shelves", "on a soft chair", "by the window", "at the desk"]),
          ("the river", ["on the bridge", "by the water", "on a big stone", "under the willow"]),
          ("the playground", ["on the slide", "in the sandbox", "by the seesaw", "under the climbing frame"]),
          ("the backyard", ["by the fence", "under the tree", "near the swing", "in the grass"])]
OBJECTS = ["ball", "kite", "toy car", "hat", "book", "box", "doll", "boat", "drum", "flower", "shell",
           "crayon", "blanket", "key", "cup", "bike", "teddy bear", "robot", "balloon", "puzzle", "train",
           "scarf", "ring", "rock", "feather", "map", "lamp", "bucket", "spoon", "sock", "bell", "jar",
           "picture", "block", "truck", "sticker", "necklace", "umbrella", "whistle", "basket"]
COLORS = ["red", "blue", "yellow", "green", "pink", "purple", "orange", "white", "black", "brown", "gold",
          "silver"]
QUALITIES = ["big", "little", "shiny", "soft", "old", "new", "tiny", "round", "funny", "pretty", "smooth",
             "fuzzy", "bright", "heavy", "special", "strange"]
FOODS = ["cake", "cookies", "apples", "bread", "soup", "berries", "a sandwich", "ice cream", "carrots",
         "pancakes", "a banana", "cheese", "candy", "pie", "milk", "honey"]
TRAITS = ["kind", "curious", "brave", "shy", "funny", "clever", "gentle", "busy", "sleepy", "cheerful",
          "silly", "quiet", "happy", "careful", "bossy", "friendly"]
HAPPY = ["happy", "excited", "proud", "glad", "cheerful", "calm", "thankful", "joyful"]
SAD = ["sad", "scared", "worried", "angry", "lonely", "upset", "sorry", "nervous", "grumpy", "confused"]
WEATHER = ["It was a sunny day.", "The sky was gray and it was raining.", "It was a windy morning.",
           "The snow was soft and white.", "It was a warm evening.", "The sun was bright and hot.",
           "Big clouds moved across the sky.", "It was a cold winter day.", "The air smelled like rain.",
           "It was a lovely spring morning.", "Leaves were falling from the trees."]
ACTIVITIES = ["play tag", "build a sand castle", "look for bugs", "sing songs", "draw pictures",
              "jump in puddles", "fly a kite", "pick berries", "have a picnic", "read a story",
              "make a tower of blocks", "splash in the water", "chase butterflies", "bake cookies",
              "play hide and seek", "count the stars", "ride a bike", "dance in a circle", "plant seeds",
              "feed the ducks", "paint a picture", "play ball", "climb a tree", "make a card",
              "look at the clouds", "play with toys", "go for a walk", "collect shells"]
SIGHTS = ["a rainbow in the sky", "a big red barn", "a line of busy ants", "a boat on the water",
          "a nest with three eggs", "a tall tower of clouds", "a puppy with a bow", "a shiny coin",
          "a butterfly with blue wings", "a snail on a leaf", "a funny hat on a snowman", "an old wooden gate",
          "a big yellow truck", "a squirrel with a nut", "a kite stuck in a tree", "a frog on a lily pad",
          "a balloon floating away", "a tiny door in a tree", "a family of ducks", "a sparkly stone"]
# (problem, fixes): {o} the object, {f} the friend, {a} the animal, {p} the pet's name
PROBLEMS = [
    ("the {o} got stuck in a tree", ["climbed a ladder and got the {o} down", "shook the branch until the {o} fell"]),
    ("the {o} fell into the water", ["used a long stick to pull the {o} out", "waited for the water to bring it back"]),
    ("{f} took the {o} without asking", ["talked to {f} and they agreed to share", "told {f} how it felt, and {f} said sorry"]),
    ("the {o} broke into two pieces", ["fixed the {o} with some glue", "made something new from the pieces"]),
    ("the {o} was lost", ["looked everywhere and found the {o} under the bed", "followed little tracks and found it"]),
    ("a big storm came", ["went inside and waited until the sun came back", "hid under a blanket and told stories"]),
    ("{f} was too shy to play", ["invited {f} to join the game", "gave {f} the first turn"]),
    ("{p} the {a} ran away", ["called {p}, and the {a} came running back", "put out some food, and {p} came home"]),
    ("{p} the {a} got sick", ["took {p} to the vet, and the {a} felt better", "gave {p} warm milk and a soft bed"]),
    ("{f} fell and hurt a knee", ["helped {f} up and found a bandage", "held {f}'s hand and walked home slowly"]),
    ("it got dark and they could not find the way home", ["followed the lights of the houses", "asked a nice lady, who showed them the way"]),
    ("the {o} was too high to reach", ["stood on a chair and reached the {o}", "asked Dad to get the {o}"]),
    ("the {o} got very dirty", ["washed the {o} with soap and water", "cleaned the {o} with a cloth"]),
    ("{f} and {h} both wanted the {o}", ["took turns with the {o}", "found a game they could play together"]),
    ("the {o} was missing a piece", ["searched the room and found the piece", "made a new piece out of paper"]),
    ("a big dog barked at them", ["stood still and spoke softly until the dog walked away", "called Mom, who came to help"]),
]
FAIL = ["tried, but it did not work.", "tried again and again, but it was too hard.", "pulled and pushed, but nothing happened.",
        "looked and looked, but could not do it alone.", "wanted to cry, but did not give up."]
HELPERS = ["Mom", "Dad", "Grandma", "Grandpa", "the teacher", "a kind old man", "a friendly bird", "the big brother",
           "the little sister", "a wise owl"]
SAY_HAPPY = ["Thank you!", "This is the best day ever!", "I love you!", "We did it!", "Let's play again!",
             "You are my best friend!", "Hooray!", "That was fun!", "I am so happy!", "Look what we did!"]
SAY_ASK = ["Can you help me?", "What should we do?", "Do you want to play?", "Where did it go?", "Is it okay?",
           "Can I try?", "Will you come with me?", "What is that?", "Why are you sad?", "Can we fix it?"]
SAY_IDEA = ["I have an idea.", "Let me help you.", "Don't worry, we can do it.", "Let's try together.",
            "I know what to do.", "Come with me."]
MORALS = ["sharing makes everyone happy", "it is good to ask for help", "saying sorry can fix a lot",
          "being kind is the best thing to do", "friends help each other", "you should never give up",
          "it is okay to feel scared sometimes", "taking turns is fair", "listening is important",
          "little things can make a big difference", "working together makes things easier",
          "it is good to be patient", "being brave can help your friends", "we should take care of our things",
          "being honest is always right", "everyone is good at something"]


def _cast(rng: random.Random) -> dict:
    """Who and what one story is about: names, pronouns, the place, the object, the problem."""
    kid_is_girl = rng.random() < 0.5
    hero = rng.choice(GIRLS if kid_is_girl else BOYS)
    friend = rng.choice([n for n in (BOYS if rng.random() < 0.5 else GIRLS) if n != hero])
    kid = "girl" if kid_is_girl else "boy"
    he, his = ("she", "her") if kid_is_girl else ("he", "his")
    animal, pet = rng.choice(ANIMALS), rng.choice(PET_NAMES)
    place, spots = rng.choice(PLACES)
    obj = rng.choice(OBJECTS)
    look = rng.choice([rng.choice(COLORS), rng.choice(QUALITIES), f"{rng.choice(QUALITIES)} {rng.choice(COLORS)}"])
    trait, ftrait = rng.choice(TRAITS), rng.choice(TRAITS)
    happy, sad = rng.choice(HAPPY), rng.choice(SAD)
    problem, fixes = rng.choice(PROBLEMS)
    fill = dict(o=obj, f=friend, a=animal, p=pet, h=hero)
    return dict(hero=hero, friend=friend, kid=kid, he=he, his=his, animal=animal, pet=pet, place=place,
                spots=spots, obj=obj, look=look, trait=trait, ftrait=ftrait, happy=happy, sad=sad,
                problem=problem.format(**fill), fixes=fixes, fill=fill, a_or_an="an" if look[0] in "aeiou" else "a")


def _beginning(rng: random.Random, c: dict) -> list[str]:
    """The opening line, the weather, and a few events before the problem."""
    hero, friend, he, animal, pet, spots = c["hero"], c["friend"], c["he"], c["animal"], c["pet"], c["spots"]
    s = [rng.choice([
        f"Once upon a time, there was a {c['trait']} little {c['kid']} named {hero}.",
        f"One day, {hero} went to {c['place']} with {c['his']} {animal}, {pet}.",
        f"{hero} had {c['a_or_an']} {c['look']} {c['obj']}. {he.capitalize()} loved it very much.",
        f"There was a {c['trait']} {animal} named {pet} who lived near {c['place']}.",
        f"{hero} was a {c['trait']} {c['kid']} who liked to {rng.choice(ACTIVITIES)}.",
        f"Once, in a small town, lived a {c['kid']} called {hero}.",
    ])]
    if rng.random() < 0.7:
        s.append(rng.choice(WEATHER))
    for _ in range(rng.randint(1, 3)):
        s.append(rng.choice([
            f"{hero} and {friend} wanted to {rng.choice(ACTIVITIES)} {rng.choice(spots)}.",
            f"{hero} liked to {rng.choice(ACTIVITIES)} with {pet} the {animal}.",
            f"{he.capitalize()} found {c['a_or_an']} {c['look']} {c['obj']} {rng.choice(spots)}.",
            f"{rng.choice(['In the morning,', 'After lunch,', 'Later,', 'Soon,', 'After a while,'])} "
            f"they saw {rng.choice(SIGHTS)}.",
            f"{friend} was very {c['ftrait']}, and {hero} liked {friend} a lot.",
            f"They ate {rng.choice(FOODS)} and drank {rng.choice(['milk', 'juice', 'water', 'tea'])}.",
            f"{pet} the {animal} {rng.choice(['ran', 'jumped', 'played', 'slept', 'sang'])} "
            f"{rng.choice(spots)}.",
            f'"{rng.choice(SAY_ASK)}" asked {friend}.',
        ]))
    return s


def _problem_and_fix(rng: random.Random, c: dict) -> list[str]:
    """The problem, failed attempts, and how it is fixed (with a helper or by an idea)."""
    hero, sad = c["hero"], c["sad"]
    s = [f"But then {c['problem']}. {hero} felt {sad}.",
         f'"{rng.choice(SAY_ASK)}" {hero} said to {rng.choice([c["friend"], c["pet"], rng.choice(HELPERS)])}.']
    for _ in range(rng.randint(0, 2)):
        s.append(f"{hero} {rng.choice(FAIL)}")
    if rng.random() < 0.6:
        helper = rng.choice([c["friend"], rng.choice(HELPERS)])
        s.append(f'"Do not be {sad}," said {helper}. "{rng.choice(SAY_IDEA)}"')
        s.append(f"So {hero} and {helper} {rng.choice(c['fixes']).format(**c['fill'])}.")
    else:
        s.append(f"Then {hero} had an idea. {c['he'].capitalize()} {rng.choice(c['fixes']).format(**c['fill'])}.")
    return s


def _ending(rng: random.Random, c: dict) -> list[str]:
    """The happy ending, the night after, and the moral."""
    hero, friend, happy = c["hero"], c["friend"], c["happy"]
    s = [rng.choice([
        f"{hero} felt {happy} again.", f"Everyone was {happy}.", f"{hero} and {friend} smiled and hugged.",
        f"{c['pet']} the {c['animal']} jumped with joy.", f"{hero} gave {friend} a big hug.",
        f"{hero}'s heart was full of joy.",
    ])]
    if rng.random() < 0.8:
        s.append(f'"{rng.choice(SAY_HAPPY)}" said {rng.choice([hero, friend])}.')
    if rng.random() < 0.4:
        s.append(f"That night, {hero} went to sleep with {c['his']} {c['obj']} and dreamed about {c['place']}.")
    moral = rng.choice(MORALS)
    s.append(rng.choice([
        f"From that day on, {hero} knew that {moral}.", f"{hero} learned that {moral}.",
        f"The moral of the story is that {moral}.", f"And {hero} always remembered that {moral}.",
    ]))
    return s


def _story(rng: random.Random) -> str:
    c = _cast(rng)
    return " ".join(_beginning(rng, c) + _problem_and_fix(rng, c) + _ending(rng, c))


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` synthetic stories, the same for the same seed."""
    rng = random.Random(seed)
    return [_story(rng) for _ in range(n)]
