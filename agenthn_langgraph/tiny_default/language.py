"""The little language the embedded default model understands, and its synthetic corpus.

Everything the tiny default knows is learned from texts generated here. Facts are random
(subject, attribute, value) pairings drawn at generation time, so no particular fact can live in
the base weights: the model has to *read* a fact (in context) or be *given* it (as an adapter).

Three genres cover what the four applications need:

* ``profile``  -- a chat where the user states personal facts among small talk
  ("<user> my pet is a cat . <assistant> nice !") and later asks about them.
* ``preference`` -- the user says what they like; questions ask for a recommendation
  ("<user> i love tea ." ... "<user> what should i drink ? <assistant> tea").
* ``product`` -- a reference document about a fictional product
  ("zorblax is a gadget . the price of zorblax is 40 . zorblax is made in oslo .").

Every attribute has several statement phrasings; the last one is held out of training and only
used by the ``heldout_phrasing`` evaluation split. Answers are a single value word.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

# ----------------------------------------------------------------------------- vocabulary pools
NAMES = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory nina oscar peggy quinn rupert "
    "sybil trent uma victor wendy xavier yara zane"
).split()
CITIES = (
    "paris oslo lima cairo delhi tokyo rome berlin madrid dublin vienna prague warsaw athens "
    "lisbon seoul hanoi nairobi quito havana"
).split()
ANIMALS = "cat dog parrot rabbit hamster turtle goldfish lizard snake ferret horse pony gecko mouse owl frog".split()
JOBS = (
    "teacher nurse farmer baker pilot doctor lawyer chef writer painter plumber dentist engineer banker sailor singer"
).split()
COLORS = "red blue green yellow purple orange pink black white brown grey silver gold teal navy beige".split()
SPORTS = "tennis soccer golf chess rugby hockey cricket boxing rowing skiing cycling karate".split()
DRINKS = "tea coffee juice milk cocoa lemonade cider water soda smoothie".split()
FOODS = "pizza pasta sushi salad soup curry tacos noodles rice burgers dumplings pancakes".split()
MUSIC = "jazz rock blues pop folk reggae opera techno punk disco".split()
HOBBIES = "hiking fishing knitting gardening cooking dancing reading camping surfing drawing".split()
MAKERS = "acme globex initech umbrella hooli vandelay soylent wonka stark wayne cyberdyne tyrell".split()
MATERIALS = "steel wood glass plastic copper bamboo leather rubber stone silk carbon ceramic".split()
PRODUCTS = (
    "zorblax quibbit flonk wizzle gromp trindle splork brannix vexlo plimbo drazzle kurnip "
    "yobble fentix muzzle glarp snorvel twizzit jabbot crindle"
).split()
NUMBERS = [str(i) for i in range(1, 100)]
LANGUAGES = "english french german spanish italian dutch polish greek turkish arabic hindi korean".split()
MONTHS = ("january february march april may june july august september october november december").split()
# pools of the attributes added in the second version of the language (see _ADDED_ATTRIBUTES)
INSTRUMENTS = "piano guitar violin drums flute cello trumpet harp banjo organ saxophone ukulele".split()
VEHICLES = "bicycle scooter van truck jeep sedan motorbike tractor canoe sailboat minivan tram".split()
SUBJECTS = "math physics history biology chemistry art law medicine geography poetry economics philosophy".split()
FLOWERS = "rose tulip lily daisy orchid poppy lotus iris sunflower violet lavender jasmine".split()
FRUITS = "apple banana mango cherry grape peach lemon melon plum kiwi pear papaya".split()
MOVIES = "comedy drama horror western thriller cartoon romance documentary fantasy mystery".split()
SIZES = "tiny small compact medium large huge giant mini slim bulky".split()
SHAPES = "round square oval flat curved cubic conical triangular spherical hexagonal".split()
POWER = "solar battery cable wind steam crank gas diesel hydrogen springs".split()

# ----------------------------------------------------------------------------- attributes
# Each attribute: genre, value pool, statement templates (last one held out), question templates.
# {s} is the subject (a product name) and {v} the value.


@dataclass(frozen=True)
class Attribute:
    name: str
    genre: str
    values: tuple[str, ...]
    statements: tuple[str, ...]  # the last is the held-out phrasing
    questions: tuple[str, ...]

    @property
    def train_statements(self) -> tuple[str, ...]:
        return self.statements[:-1]

    @property
    def heldout_statement(self) -> str:
        return self.statements[-1]


def _a(name: str, genre: str, values: list[str], statements: list[str], questions: list[str]) -> Attribute:
    return Attribute(name, genre, tuple(values), tuple(statements), tuple(questions))


_ORIGINAL_ATTRIBUTES: tuple[Attribute, ...] = (
    # --- profile: personal facts stated in a chat
    _a(
        "name",
        "profile",
        NAMES,
        ["my name is {v} .", "call me {v} .", "i am called {v} .", "everyone calls me {v} ."],
        ["what is my name ?", "what am i called ?"],
    ),
    _a(
        "city",
        "profile",
        CITIES,
        ["i live in {v} .", "my home is in {v} .", "i moved to {v} .", "these days i stay in {v} ."],
        ["where do i live ?", "what city do i live in ?"],
    ),
    _a(
        "pet",
        "profile",
        ANIMALS,
        ["my pet is a {v} .", "i have a pet {v} .", "i keep a {v} at home .", "at home a {v} waits for me ."],
        ["what pet do i have ?", "what is my pet ?"],
    ),
    _a(
        "job",
        "profile",
        JOBS,
        ["i work as a {v} .", "my job is {v} .", "i am a {v} by trade .", "for a living i am a {v} ."],
        ["what is my job ?", "what do i do for work ?"],
    ),
    _a(
        "age",
        "profile",
        NUMBERS,
        ["i am {v} years old .", "my age is {v} .", "i just turned {v} .", "i have lived {v} years ."],
        ["how old am i ?", "what is my age ?"],
    ),
    _a(
        "color",
        "profile",
        COLORS,
        ["my favorite color is {v} .", "i like the color {v} .", "{v} is my color .", "the color i love is {v} ."],
        ["what is my favorite color ?", "which color do i like ?"],
    ),
    _a(
        "sport",
        "profile",
        SPORTS,
        ["i play {v} .", "my sport is {v} .", "i practice {v} every week .", "on weekends i do {v} ."],
        ["what sport do i play ?", "which sport do i do ?"],
    ),
    _a(
        "language",
        "profile",
        LANGUAGES,
        ["i speak {v} .", "my language is {v} .", "at home we talk in {v} .", "i grew up speaking {v} ."],
        ["what language do i speak ?", "which language is mine ?"],
    ),
    _a(
        "month",
        "profile",
        MONTHS,
        [
            "my birthday is in {v} .",
            "i was born in {v} .",
            "i celebrate my birthday in {v} .",
            "every {v} i get a year older .",
        ],
        ["when is my birthday ?", "in which month was i born ?"],
    ),
    # --- preference: likes that change the assistant's recommendations
    _a(
        "drink",
        "preference",
        DRINKS,
        ["i love {v} .", "my favorite drink is {v} .", "i always drink {v} .", "nothing beats {v} for me ."],
        ["what should i drink ?", "recommend a drink for me ."],
    ),
    _a(
        "food",
        "preference",
        FOODS,
        ["i love eating {v} .", "my favorite food is {v} .", "i could eat {v} every day .", "for dinner i want {v} ."],
        ["what should i eat ?", "recommend a food for me ."],
    ),
    _a(
        "music",
        "preference",
        MUSIC,
        ["i listen to {v} .", "my favorite music is {v} .", "i enjoy {v} music .", "put on some {v} for me ."],
        ["what music should i play ?", "recommend some music for me ."],
    ),
    _a(
        "hobby",
        "preference",
        HOBBIES,
        ["my hobby is {v} .", "i enjoy {v} .", "in my free time i go {v} .", "i spend weekends {v} ."],
        ["what hobby should i do ?", "recommend an activity for me ."],
    ),
    # --- product: reference documents about fictional products
    _a(
        "price",
        "product",
        NUMBERS,
        ["the price of {s} is {v} .", "{s} costs {v} dollars .", "{s} sells for {v} .", "you can buy {s} for {v} ."],
        ["what is the price of {s} ?", "how much does {s} cost ?"],
    ),
    _a(
        "maker",
        "product",
        MAKERS,
        ["{s} is made by {v} .", "the maker of {s} is {v} .", "{v} builds {s} .", "{s} comes from the company {v} ."],
        ["who makes {s} ?", "what company makes {s} ?"],
    ),
    _a(
        "origin",
        "product",
        CITIES,
        [
            "{s} is built in {v} .",
            "the factory of {s} is in {v} .",
            "{s} ships from {v} .",
            "{s} was designed in {v} .",
        ],
        ["where is {s} built ?", "which city builds {s} ?"],
    ),
    _a(
        "material",
        "product",
        MATERIALS,
        ["{s} is made of {v} .", "the body of {s} is {v} .", "{s} uses {v} .", "the shell of {s} is pure {v} ."],
        ["what is {s} made of ?", "what material is {s} ?"],
    ),
    _a(
        "weight",
        "product",
        NUMBERS,
        [
            "{s} weighs {v} grams .",
            "the weight of {s} is {v} .",
            "{s} has a weight of {v} .",
            "on a scale {s} shows {v} .",
        ],
        ["how much does {s} weigh ?", "what is the weight of {s} ?"],
    ),
    _a(
        "shade",
        "product",
        COLORS,
        ["the color of {s} is {v} .", "{s} is painted {v} .", "{s} comes in {v} .", "{s} has a {v} finish ."],
        ["what color is {s} ?", "which color is {s} ?"],
    ),
)
# Added in the language's second version, so that one text can state up to 16 facts. Their words
# come after every original word in the vocabulary: token ids of the first version do not move.
_ADDED_ATTRIBUTES: tuple[Attribute, ...] = (
    _a(
        "instrument",
        "profile",
        INSTRUMENTS,
        ["my instrument is the {v} .", "i can play the {v} .", "i am learning the {v} .", "i make music on the {v} ."],
        ["what instrument do i play ?", "which instrument is mine ?"],
    ),
    _a(
        "vehicle",
        "profile",
        VEHICLES,
        ["i drive a {v} .", "my vehicle is a {v} .", "i get around by {v} .", "i ride a {v} to work ."],
        ["what do i drive ?", "what is my vehicle ?"],
    ),
    _a(
        "subject",
        "profile",
        SUBJECTS,
        ["i study {v} .", "my field is {v} .", "at school i loved {v} .", "i have a degree in {v} ."],
        ["what do i study ?", "what is my field ?"],
    ),
    _a(
        "flower",
        "preference",
        FLOWERS,
        ["my favorite flower is the {v} .", "i grow {v} in my garden .", "i love the smell of {v} .", "buy me a {v} ."],
        ["what flower should i get ?", "recommend a flower for me ."],
    ),
    _a(
        "fruit",
        "preference",
        FRUITS,
        ["my favorite fruit is {v} .", "i snack on {v} .", "i always buy {v} .", "a {v} a day keeps me happy ."],
        ["what fruit should i buy ?", "recommend a fruit for me ."],
    ),
    _a(
        "movie",
        "preference",
        MOVIES,
        ["i like {v} movies .", "my favorite film genre is {v} .", "i watch {v} films .", "tonight i want a {v} ."],
        ["what movie should i watch ?", "recommend a film for me ."],
    ),
    _a(
        "designer",
        "product",
        NAMES,
        [
            "{s} was designed by {v} .",
            "the designer of {s} is {v} .",
            "{v} drew the plans for {s} .",
            "{s} is the work of {v} .",
        ],
        ["who designed {s} ?", "who is the designer of {s} ?"],
    ),
    _a(
        "size",
        "product",
        SIZES,
        ["the size of {s} is {v} .", "{s} has a {v} form .", "{s} is {v} in size .", "next to a cup {s} looks {v} ."],
        ["what size is {s} ?", "how big is {s} ?"],
    ),
    _a(
        "shape",
        "product",
        SHAPES,
        ["the shape of {s} is {v} .", "{s} has a {v} shape .", "{s} is shaped {v} .", "seen from above {s} is {v} ."],
        ["what shape is {s} ?", "which shape does {s} have ?"],
    ),
    _a(
        "power",
        "product",
        POWER,
        ["{s} runs on {v} .", "the power source of {s} is {v} .", "{s} is powered by {v} .", "{s} needs {v} to work ."],
        ["what powers {s} ?", "what does {s} run on ?"],
    ),
)
ATTRIBUTES: tuple[Attribute, ...] = _ORIGINAL_ATTRIBUTES + _ADDED_ATTRIBUTES
ATTRIBUTE_BY_NAME = {a.name: a for a in ATTRIBUTES}
GENRES = ("profile", "preference", "product")

SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("hello !", "hi , how can i help ?"),
    ("how are you ?", "i am fine , thanks ."),
    ("nice weather today .", "yes , it is sunny ."),
    ("i had a long day .", "sorry to hear that ."),
    ("thanks for the help .", "you are welcome ."),
    ("tell me a joke .", "why did the cat sit on the computer ? to keep an eye on the mouse ."),
    ("what time is it ?", "i do not have a clock ."),
    ("good morning .", "good morning to you too ."),
    ("i am bored .", "maybe take a short walk ."),
    ("it is raining again .", "do not forget your umbrella ."),
)
ACKS = ("nice !", "got it .", "ok , noted .", "cool .", "thanks for telling me .", "good to know .")
PRODUCT_INTROS = ("{s} is a new gadget .", "this is the manual for {s} .", "meet {s} .", "{s} is a product .")

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<end>", "<system>", "<user>", "<assistant>", "<tool>")
EXTRA_WORDS = (
    "you your yes no not a an the of is are am i my me to for in on and or it what which who how "
    "where when why do does did can will should help please sorry welcome thanks thank ok good "
    "bad fine remember know tell about facts recall relevant first answer question notes note "
    "user assistant system doc document skill profile product , . ? ! : ; - ( ) 0 100"
).split()


def vocabulary() -> list[str]:
    """The full word list, special tokens first; deterministic order so token ids are stable."""
    words: list[str] = list(SPECIAL_TOKENS)
    seen = set(words)

    def add(text: str) -> None:
        for w in text.replace("{s}", " ").replace("{v}", " ").split():
            if w not in seen:
                seen.add(w)
                words.append(w)

    def add_attributes(attributes: tuple[Attribute, ...]) -> None:
        for attribute in attributes:
            for t in attribute.statements + attribute.questions:
                add(t)
            for v in attribute.values:
                add(v)

    add_attributes(_ORIGINAL_ATTRIBUTES)
    for pool in (PRODUCTS,):
        add(" ".join(pool))
    for user, bot in SMALL_TALK:
        add(user)
        add(bot)
    for t in ACKS + PRODUCT_INTROS:
        add(t)
    add(" ".join(EXTRA_WORDS))
    add_attributes(_ADDED_ATTRIBUTES)  # last: the first version's ids stay where they were
    return words


# ----------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Fact:
    subject: str  # "user" for profile/preference facts, a product name for product facts
    attribute: str
    value: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.subject, self.attribute)

    def question(self, rng: random.Random) -> str:
        return rng.choice(ATTRIBUTE_BY_NAME[self.attribute].questions).format(s=self.subject)


@dataclass
class Sample:
    """One text to internalize and the facts it states."""

    text: str
    genre: str
    facts: list[Fact] = field(default_factory=list)

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {f.key for f in self.facts}


def max_facts(genre: str, attributes: tuple[Attribute, ...] = ATTRIBUTES) -> int:
    """Most facts one text of ``genre`` can state (user chats mix profile and preference facts)."""
    if genre == "product":
        return sum(a.genre == "product" for a in attributes)
    return sum(a.genre in ("profile", "preference") for a in attributes)


def known_attributes(vocabulary: set[str] | dict[str, int]) -> tuple[Attribute, ...]:
    """The attributes all of whose words a tokenizer knows (a checkpoint of an earlier language
    version knows only that version's attributes)."""
    words = set(vocabulary)

    def known(a: Attribute) -> bool:
        text = " ".join(a.statements + a.questions + a.values).replace("{s}", " ").replace("{v}", " ")
        return set(text.split()) <= words

    return tuple(a for a in ATTRIBUTES if known(a))


def chance(facts: list[Fact]) -> float:
    """Expected recall of a guess uniform over each attribute's value pool."""
    return sum(1.0 / len(ATTRIBUTE_BY_NAME[f.attribute].values) for f in facts) / max(len(facts), 1)


class Corpus:
    """Draws random texts of the little language. One instance per seed; fully deterministic.

    ``heldout_phrasing=True`` states every fact with its attribute's held-out template, which
    training never sees.
    """

    def __init__(
        self, seed: int, *, heldout_phrasing: bool = False, attributes: tuple[Attribute, ...] = ATTRIBUTES
    ) -> None:
        self.rng = random.Random(seed)
        self.heldout_phrasing = heldout_phrasing
        self.attributes = attributes

    def _statement(self, attribute: Attribute, fact: Fact) -> str:
        template = attribute.heldout_statement if self.heldout_phrasing else self.rng.choice(attribute.train_statements)
        return template.format(s=fact.subject, v=fact.value)

    def sample(
        self,
        n_facts: int = 4,
        *,
        genre: str | None = None,
        exclude_keys: set[tuple[str, str]] | None = None,
        small_talk: float = 0.5,
    ) -> Sample:
        """A text stating ``n_facts`` random facts, none of whose keys is in ``exclude_keys``."""
        rng = self.rng
        genre = genre or rng.choice(GENRES)
        exclude = exclude_keys or set()
        subject = rng.choice(PRODUCTS) if genre == "product" else "user"
        candidates = [a for a in self.attributes if a.genre == genre and (subject, a.name) not in exclude]
        if genre == "product":
            # a product text that cannot take n_facts new keys for this subject picks another one
            for _ in range(50):
                if len(candidates) >= n_facts:
                    break
                subject = rng.choice(PRODUCTS)
                candidates = [a for a in self.attributes if a.genre == genre and (subject, a.name) not in exclude]
        elif len(candidates) < n_facts:
            # user facts of both genres can mix in one chat when one genre runs short
            candidates = [
                a for a in self.attributes if a.genre in ("profile", "preference") and (subject, a.name) not in exclude
            ]
        if len(candidates) < n_facts:
            raise ValueError(f"cannot draw {n_facts} fresh facts for genre {genre!r}")
        attributes = rng.sample(candidates, n_facts)
        facts = [Fact(subject, a.name, rng.choice(a.values)) for a in attributes]

        if genre == "product":
            parts = [rng.choice(PRODUCT_INTROS).format(s=subject)]
            parts += [self._statement(ATTRIBUTE_BY_NAME[f.attribute], f) for f in facts]
            text = " ".join(parts)
        else:
            turns: list[str] = []
            for f in facts:
                if rng.random() < small_talk:
                    user, bot = rng.choice(SMALL_TALK)
                    turns.append(f"<user> {user} <assistant> {bot} <end>")
                turns.append(
                    f"<user> {self._statement(ATTRIBUTE_BY_NAME[f.attribute], f)} <assistant> {rng.choice(ACKS)} <end>"
                )
            text = " ".join(turns)
        return Sample(text=text, genre=genre, facts=facts)

    def group(self, n_texts: int, n_facts: int = 4, *, genre: str | None = None) -> list[Sample]:
        """``n_texts`` texts with pairwise disjoint fact keys (no question has two answers).

        Used to compose adapters of *unrelated* texts: segments of one user's memory, or documents
        about different products.
        """
        used: set[tuple[str, str]] = set()
        out: list[Sample] = []
        for _ in range(n_texts):
            try:
                s = self.sample(n_facts, genre=genre, exclude_keys=used)
            except ValueError:  # the user's keys ran out: an unrelated product document instead
                s = self.sample(n_facts, genre="product", exclude_keys=used)
            used |= s.keys
            out.append(s)
        return out

    def stream(self, max_facts: int = 4) -> Iterator[Sample]:
        while True:
            yield self.sample(self.rng.randint(1, max_facts))


def render_prompt(question: str, context: str | None = None) -> str:
    """The model-side prompt for a question, with the text in context or not."""
    ctx = f"{context} " if context else ""
    return f"<bos> {ctx}<user> {question} <assistant>"
