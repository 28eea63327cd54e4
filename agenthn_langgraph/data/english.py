"""Synthetic English texts whose facts are random, for training and testing hypernetworks on real chat models.

Nothing can be downloaded on the training machines, and a benchmark built from real-world facts
would mostly measure what the base model already knows. So every fact here is a *random pairing*
drawn at generation time: the user's sister is called whatever name the generator picked, the
"Quibbit X2" (a product name made of random syllables) weighs a random number of grams. The only
way a model can answer is to read the text (in context) or to be given it (as a generated adapter).

Four genres, each with its own attributes (at least 16, so one text can state up to 16 facts, each
attribute at most once):

* ``profile``    -- a chat in which the user states facts about themselves among small talk.
* ``preference`` -- a chat in which the user says what they like; questions ask for a
  recommendation or for the preference itself.
* ``product``    -- a reference document about a fictional product.
* ``procedure``  -- a reference document about a fictional procedure or policy.

Design choices, and why:

* **Multi-token values.** Real answers are rarely one token: full names ("Maria Lopez"),
  multi-word cities ("Salt Lake City"), quantities with units ("3.5 hours", "$129.99"), dates
  ("March 14, 2031"), codes ("K7-415"). Values come from large pools or are generated, and are
  distinct within one text so no question has two candidate answers.
* **Verbatim answers.** Every answer occurs in the context exactly (same case), so recall can be
  scored by exact or substring match, and a trainer can locate the answer span in the context.
* **Held-out phrasings.** Each attribute has at least 8 statement templates; the last
  :data:`N_HELDOUT` are never used unless ``heldout_phrasing=True``. Examples built that way
  (``meta["split"] == "heldout_phrasing"``) test whether a model learned the *fact* rather than a
  surface pattern of the training sentences.
* **Keys.** Every question carries ``key = "<subject>/<attribute>"`` (subject ``user`` in chats,
  the product or procedure name in documents), so generic code can tell which examples could
  answer the same question differently and must not be composed as unrelated.
* **Chat format.** Chats are plain ``User: ...`` / ``Assistant: ...`` transcripts, and the same
  turns are in ``meta["turns"]`` so a trainer can render them with the base model's chat template.

Everything is drawn from one ``random.Random(seed)``: a (count, seed, options) triple always yields
the same examples, whatever else the process does with the global RNG.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .facts import Fact
from .qa import QAExample, QAPair

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_BY_NAME",
    "ATTRIBUTES_BY_GENRE",
    "CHAT_GENRES",
    "DOCUMENT_GENRES",
    "GENRES",
    "N_HELDOUT",
    "SMALL_TALK",
    "USER_ATTRIBUTES",
    "Attribute",
    "EnglishFacts",
    "generate_english",
    "max_facts",
]

GENRES = ("profile", "preference", "product", "procedure")
CHAT_GENRES = ("profile", "preference")
DOCUMENT_GENRES = ("product", "procedure")
N_HELDOUT = 2
"""How many statement templates per attribute (the last ones) are reserved for ``heldout_phrasing``."""

# ----------------------------------------------------------------------------- word pools
FEMALE_NAMES = (
    "Maria Aisha Sofia Priya Chloe Elena Fatima Hannah Mei Amara Leila Yuki Zara Ingrid Olivia Nadia Grace Anya "
    "Isabel Sienna Rosa Lena Clara Julia Freya Naomi Lucia Ruth Imani Vera Alice Carmen Eva Farah Helena Jade "
    "Laura Nora Paula Rita Tessa Ximena Zoe Ada Bianca Daria Esther Greta Keiko Lina Maya Nina Petra Selma Talia"
).split()
MALE_NAMES = (
    "James Kenji Liam Mateo Omar Noah Lucas Diego Ethan Jonas Daniel Gabriel Samuel Ravi Tomas Felix Hugo Kwame "
    "Marco Victor Adrian Tariq Emeka Arjun Pablo Henrik Malik Stefan Oscar Hiro Ben Dmitri George Ian Karim Owen "
    "Quentin Simon Wesley Yusuf Andre Bruno Caleb Elias Finn Idris Joel Leo Nikhil Rafael Sven Theo Vikram"
).split()
SURNAMES = (
    "Lopez Smith Khan Tanaka Rossi Okafor Novak Schmidt Dubois Nguyen Patel Garcia Kowalski Andersen Silva Murphy "
    "Cohen Haddad Fischer Moreau Santos Kim Park Chen Wright Walker Osei Mensah Costa Ferreira Jensen Larsen Bauer "
    "Keller Horvat Popescu Yilmaz Demir Hassan Reyes Cruz Morales Ortiz Romero Navarro Carter Hughes Bennett Foster "
    "Morgan Sullivan Brennan Doyle Fraser Lindqvist Nakamura Sato Mehta Rao Iyer Mwangi Kariuki Varga Szabo Petrov"
).split()
CITIES = (
    "Buenos Aires", "Salt Lake City", "New York", "San Francisco", "Los Angeles", "Rio de Janeiro", "Cape Town",
    "Kuala Lumpur", "Hong Kong", "Mexico City", "New Delhi", "Tel Aviv", "Sao Paulo", "Las Vegas", "Ho Chi Minh City",
    "Panama City", "Santa Fe", "San Diego", "Quebec City", "Addis Ababa", "Abu Dhabi", "Kansas City", "Baton Rouge",
    "New Orleans", "Des Moines", "Thunder Bay", "Palm Springs", "Colorado Springs", "San Juan", "Santo Domingo",
    "Dar es Salaam", "Phnom Penh", "Glasgow", "Oslo", "Lima", "Cairo", "Tokyo", "Rome", "Berlin", "Madrid", "Dublin",
    "Vienna", "Prague", "Warsaw", "Athens", "Lisbon", "Seoul", "Hanoi", "Nairobi", "Quito", "Toronto", "Vancouver",
    "Melbourne", "Auckland", "Edinburgh", "Munich", "Lyon", "Porto", "Krakow", "Istanbul", "Marrakesh", "Accra",
    "Lagos", "Montreal", "Chicago", "Denver", "Seattle", "Boston", "Austin", "Reykjavik", "Helsinki", "Stockholm",
    "Copenhagen", "Bangkok", "Manila", "Osaka",
)  # fmt: skip
DESTINATIONS = CITIES[:40] + (
    "the Scottish Highlands", "Patagonia", "Iceland", "the Amalfi Coast", "Bali", "Kyoto", "the Greek islands",
    "Lapland", "Zanzibar", "the Swiss Alps", "Tasmania", "Yellowstone", "the Maldives", "Cape Cod", "Banff",
    "the Faroe Islands", "Sicily", "Costa Rica", "New Zealand", "the Norwegian fjords", "Tuscany", "Mongolia",
)  # fmt: skip
JOBS = (
    "nurse", "architect", "software engineer", "dental hygienist", "bus driver", "high school teacher", "pharmacist",
    "graphic designer", "accountant", "electrician", "veterinarian", "data analyst", "firefighter", "journalist",
    "pastry chef", "physiotherapist", "librarian", "civil engineer", "flight attendant", "social worker",
    "marine biologist", "photographer", "lawyer", "project manager", "air traffic controller", "carpenter",
    "translator", "museum curator", "police officer", "web developer", "real estate agent", "personal trainer",
    "radio host", "tour guide", "lab technician", "wedding planner", "farmer", "pilot", "plumber", "dentist",
)  # fmt: skip
COMPANY_HEADS = (
    "Brightwater Northfield Silverline Redwood Bluepeak Ironbridge Greenvale Starling Oakmont Clearwater Highland "
    "Sunridge Kestrel Maplewood Harborview Westbrook Crescent Pinecrest Goldleaf Stonegate"
).split()
COMPANY_TAILS = (
    "Logistics Bank Labs Foods Systems Media Insurance Health Energy Robotics Consulting Studios Airlines Hotels "
    "Pharma Software Motors Textiles"
).split()
PET_KINDS = (
    "dog", "cat", "golden retriever", "border collie", "tabby cat", "parrot", "rabbit", "hamster", "guinea pig",
    "bearded dragon", "tortoise", "goldfish", "ferret", "corgi", "beagle", "Siamese cat", "cockatiel", "chinchilla",
    "hedgehog", "iguana", "dachshund", "poodle", "husky", "canary", "budgie", "gecko", "Maine Coon", "pony",
)  # fmt: skip
PET_NAMES = (
    "Biscuit Pepper Luna Mochi Ziggy Noodle Pickles Waffles Bella Oreo Captain Sprout Clover Nugget Tofu Maple "
    "Juniper Rocket Pumpkin Bean Gizmo Peanut Muffin Shadow Pixel Basil Hazel Socks Bandit Cosmo Dumpling Marble "
    "Poppy Scout Pretzel Ranger Echo Bubbles Tango Whiskers"
).split()
CARS = (
    "Toyota Corolla", "Honda Civic", "Ford Focus", "Volkswagen Golf", "Subaru Outback", "Tesla Model 3", "Mazda CX-5",
    "Kia Sportage", "Hyundai Tucson", "Volvo XC60", "Nissan Leaf", "Fiat 500", "Renault Clio", "Peugeot 208",
    "Jeep Wrangler", "BMW 3 Series", "Audi A4", "Skoda Octavia", "Mini Cooper", "Ford Mustang", "Chevrolet Bolt",
    "Toyota Prius", "Honda Jazz", "Land Rover Defender", "Volkswagen Beetle", "Citroen C3", "Dacia Duster",
    "Mitsubishi Outlander",
)  # fmt: skip
ALLERGIES = (
    "peanuts", "shellfish", "cat hair", "pollen", "penicillin", "bee stings", "dust mites", "gluten", "sesame",
    "tree nuts", "latex", "strawberries", "eggs", "soy", "mold", "horses", "wasp stings", "ibuprofen", "aspirin",
    "walnuts", "celery", "mustard", "dog hair", "cashews",
)  # fmt: skip
FAVORITE_COLORS = (
    "forest green", "navy blue", "mustard yellow", "burgundy", "teal", "lavender", "coral", "charcoal gray",
    "sky blue", "olive green", "crimson", "turquoise", "peach", "lilac", "emerald green", "rust orange",
    "sand beige", "plum purple", "ivory", "cobalt blue",
)  # fmt: skip
INSTRUMENTS = (
    "piano", "guitar", "violin", "drums", "cello", "flute", "saxophone", "trumpet", "ukulele", "bass guitar", "harp",
    "clarinet", "accordion", "banjo", "mandolin", "harmonica", "trombone", "electric guitar", "double bass", "oboe",
)  # fmt: skip
STREET_NAMES = (
    "Maple Oak Cedar Elm Willow Birch Chestnut Harbor Mill Church Station King Queen Park River Lake Hill Orchard "
    "Meadow Sunset Garden Victoria Bridge Spring Forest Highland Rosewood Ashford"
).split()
STREET_TYPES = "Street Road Avenue Lane Drive Way Court Place".split()
MONTHS = "January February March April May June July August September October November December".split()
DRINKS = (
    "green tea", "iced coffee", "hot chocolate", "sparkling water", "mango lassi", "oat milk latte", "ginger ale",
    "lemonade", "chai latte", "peppermint tea", "orange juice", "cold brew", "espresso", "cherry cola",
    "jasmine tea", "apple cider", "matcha latte", "coconut water", "root beer", "iced tea", "flat white",
    "cappuccino", "kombucha", "tomato juice", "rooibos tea",
)  # fmt: skip
DISHES = (
    "mushroom risotto", "chicken curry", "pad thai", "lasagna", "beef tacos", "ramen", "paella", "falafel",
    "margherita pizza", "fish and chips", "lentil soup", "sushi", "dumplings", "shakshuka", "pho", "grilled salmon",
    "eggplant parmesan", "chili con carne", "butter chicken", "spaghetti carbonara", "pierogi", "jollof rice",
    "bibimbap", "moussaka", "goulash", "tomato soup", "caesar salad", "veggie burgers",
)  # fmt: skip
CUISINES = (
    "Thai Ethiopian Korean Mexican Lebanese Indian Japanese Italian Greek Peruvian Vietnamese Moroccan Turkish "
    "Georgian Brazilian Spanish French Sichuan Filipino Nigerian Malaysian Portuguese Persian Cajun"
).split()
DESSERTS = (
    "chocolate cake", "lemon tart", "tiramisu", "apple pie", "cheesecake", "creme brulee", "banana bread",
    "rice pudding", "pistachio ice cream", "carrot cake", "baklava", "key lime pie", "churros", "panna cotta",
    "brownies", "strawberry shortcake", "peach cobbler", "chocolate mousse", "pecan pie", "fruit salad",
)  # fmt: skip
FRUITS = (
    "mangoes", "blueberries", "peaches", "cherries", "pineapple", "watermelon", "kiwis", "figs", "apricots", "grapes",
    "pomegranates", "raspberries", "plums", "lychees", "papayas", "bananas", "green apples", "blood oranges", "pears",
    "clementines",
)  # fmt: skip
MUSIC = (
    "jazz", "indie rock", "bossa nova", "classical music", "hip hop", "country", "heavy metal", "reggae", "blues",
    "k-pop", "electronic music", "folk", "soul", "punk rock", "opera", "synth pop", "bluegrass", "lo-fi beats",
    "disco", "gospel", "afrobeats", "grunge", "flamenco", "smooth jazz",
)  # fmt: skip
HOBBIES = (
    "rock climbing", "watercolor painting", "pottery", "birdwatching", "baking bread", "gardening", "woodworking",
    "knitting", "trail running", "photography", "surfing", "kayaking", "calligraphy", "origami", "scuba diving",
    "stargazing", "fishing", "archery", "juggling", "yoga", "skateboarding", "beekeeping", "embroidery", "geocaching",
)  # fmt: skip
BOARD_GAMES = (
    "chess", "Scrabble", "Monopoly", "Catan", "Ticket to Ride", "Carcassonne", "backgammon", "checkers", "Risk",
    "Clue", "Pandemic", "Codenames", "Azul", "Dominion", "mahjong", "Splendor", "Wingspan", "Dixit", "Uno",
    "Trivial Pursuit",
)  # fmt: skip
AUTHORS = (
    "Jane Austen", "Toni Morrison", "Haruki Murakami", "Agatha Christie", "Gabriel Garcia Marquez",
    "Ursula K. Le Guin", "Terry Pratchett", "Chimamanda Ngozi Adichie", "Kazuo Ishiguro", "Octavia Butler",
    "Neil Gaiman", "Isabel Allende", "Leo Tolstoy", "Virginia Woolf", "Mark Twain", "Zadie Smith", "Stephen King",
    "Margaret Atwood", "Italo Calvino", "Sally Rooney", "Ken Liu", "Elena Ferrante", "Jhumpa Lahiri",
    "Chinua Achebe", "Fyodor Dostoevsky", "Ann Patchett", "Ray Bradbury", "Arundhati Roy", "Orhan Pamuk",
    "Donna Tartt",
)  # fmt: skip
SEATS = (
    "window seat", "aisle seat", "exit row seat", "seat near the front", "seat at the back", "middle seat",
    "bulkhead seat", "seat by the door", "quiet carriage seat", "seat over the wing", "forward-facing seat",
)  # fmt: skip
FILM_GENRES = (
    "science fiction", "romantic comedies", "horror films", "documentaries", "westerns", "animated films",
    "crime thrillers", "period dramas", "musicals", "war films", "martial arts films", "fantasy epics",
    "heist movies", "courtroom dramas", "spy thrillers", "superhero movies", "silent films", "mystery films",
)  # fmt: skip
BOOK_GENRES = (
    "historical fiction", "mystery novels", "fantasy", "poetry", "biographies", "travel writing", "graphic novels",
    "cozy mysteries", "true crime", "short stories", "memoirs", "philosophy", "popular science", "crime fiction",
    "classic novels", "thrillers", "cookbooks", "horror stories",
)  # fmt: skip
WATCH_SPORTS = (
    "tennis", "Formula 1", "basketball", "cricket", "rugby", "ice hockey", "baseball", "figure skating", "cycling",
    "golf", "volleyball", "soccer", "boxing", "sumo wrestling", "snooker", "sailing", "marathon running", "darts",
    "table tennis", "horse racing",
)  # fmt: skip
CONTACT_METHODS = (
    "email", "text messages", "phone calls", "voice notes", "video calls", "WhatsApp", "handwritten letters",
    "Slack messages", "instant messages", "a quick phone call",
)  # fmt: skip
FLOWERS = (
    "sunflowers", "white tulips", "red roses", "orchids", "peonies", "lilies", "daisies", "lavender", "hydrangeas",
    "irises", "marigolds", "dahlias", "carnations", "magnolias", "poppies", "freesias", "camellias", "gardenias",
)  # fmt: skip
PRODUCT_CATEGORIES = (
    "smart speaker", "robot vacuum", "electric kettle", "fitness tracker", "e-reader", "drone", "desk lamp",
    "air purifier", "coffee grinder", "portable projector", "label printer", "baby monitor", "electric toothbrush",
    "smartwatch", "action camera", "bike light", "handheld game console", "digital thermometer", "air fryer",
    "graphics tablet", "weather station", "soundbar", "power bank", "3D printer", "electric scooter",
    "sewing machine", "ice cream maker", "humidifier",
)  # fmt: skip
PRODUCT_COLORS = (
    "midnight blue", "matte black", "pearl white", "rose gold", "space gray", "mint green", "coral red",
    "sunset orange", "graphite", "sand beige", "forest green", "arctic white", "cherry red", "ocean blue",
    "lemon yellow", "slate gray", "lavender purple", "copper brown",
)  # fmt: skip
MATERIALS = (
    "brushed aluminum", "recycled plastic", "stainless steel", "bamboo", "carbon fiber", "walnut wood",
    "tempered glass", "ceramic", "copper", "titanium", "oak", "silicone", "leather", "cork", "fiberglass",
    "magnesium alloy", "matte polymer", "beech wood",
)  # fmt: skip
MAKER_TAILS = "Labs Industries Electronics Devices Technologies Works Instruments Design Systems Gear".split()
PRODUCT_SUFFIXES = (
    "", "", "", " Pro", " Mini", " Max", " Go", " One", " Lite", " Air", " Plus", " S", " 300", " 5", " X",
)  # fmt: skip
PROCEDURE_KINDS = (
    "router reset", "badge renewal", "expense claim", "laptop return", "parking permit application",
    "printer setup", "visitor check-in", "password reset", "fire drill", "locker request", "desk booking",
    "boiler restart", "key handover", "sample shipment", "safety inspection", "software update", "travel request",
    "leave request", "equipment loan", "data backup", "filter replacement", "membership renewal", "server restart",
    "lab cleanup", "mail pickup", "bike storage request", "meeting room booking", "alarm test",
)  # fmt: skip
TOOLS = (
    "paperclip", "4 mm hex key", "flathead screwdriver", "USB cable", "ladder", "flashlight", "pair of pliers",
    "label maker", "access card", "laptop charger", "tape measure", "ethernet cable", "SIM tool", "soft cloth",
    "spirit level", "small brush", "rubber mallet", "voltage tester", "safety pin", "Phillips screwdriver",
    "pair of gloves", "torque wrench", "clipboard", "multimeter",
)  # fmt: skip
DEPARTMENTS = (
    "IT Support", "Facilities", "Human Resources", "Finance", "Security", "Reception", "Operations", "Procurement",
    "Customer Care", "Lab Services", "Logistics", "Legal", "Health and Safety", "Payroll",
)  # fmt: skip
APPROVERS = (
    "team lead", "office manager", "head of security", "IT manager", "facilities manager", "finance director",
    "shift supervisor", "building manager", "lab manager", "HR partner", "department head", "safety officer",
)  # fmt: skip
FLOORS = (
    "ground floor", "second floor", "third floor", "fourth floor", "fifth floor", "sixth floor", "seventh floor",
    "eighth floor", "ninth floor", "tenth floor", "eleventh floor", "twelfth floor", "basement level",
)  # fmt: skip
_ONSETS = "b bl br d dr f fl g gl gr j k kl l m n p pl r s sn st t tr v w z".split()
_VOWELS = "a e i o u a o ee oo".split()
_CODAS = "x n r k b t l m s z".split()
_CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: they read as 1 and 0

# ----------------------------------------------------------------------------- value generators
Draw = Callable[[random.Random], str]


def _pick(pool: Sequence[str]) -> Draw:
    """A draw from a fixed pool (the pool is copied to a tuple so later edits cannot leak in)."""
    items = tuple(pool)
    return lambda rng: rng.choice(items)


def _full_name(rng: random.Random) -> str:
    return f"{rng.choice(FEMALE_NAMES + MALE_NAMES)} {rng.choice(SURNAMES)}"


def _grid(lo: float, hi: float, step: float = 1) -> tuple[str, ...]:
    """The numbers lo, lo + step, ... hi as they are written: "3", "3.5", "1.2" (never "4.0")."""
    count = round((hi - lo) / step)
    numbers = (round(lo + k * step, 1) for k in range(count + 1))
    return tuple(str(int(x)) if x == int(x) else str(x) for x in numbers)


def _measure(*units: tuple[str, str, Sequence[str]]) -> Draw:
    """Quantities with units: each unit is (singular, plural, numbers), one unit picked at random.

    Numbers are a grid (:func:`_grid`) per unit so that values look like what people write
    ("3.5 hours", "1.2 kilograms", "90 days"), not "36.7 hours".
    """
    table = tuple((singular, plural, tuple(numbers)) for singular, plural, numbers in units)

    def draw(rng: random.Random) -> str:
        singular, plural, numbers = rng.choice(table)
        number = rng.choice(numbers)
        return f"{number} {singular if number == '1' else plural}"

    return draw


def _money(lo: int, hi: int) -> Draw:
    """Prices with a currency symbol; sometimes with cents ("$129.99", "€45", "£12.50")."""

    def draw(rng: random.Random) -> str:
        amount = str(rng.randint(lo, hi))
        if rng.random() < 0.3:
            amount += rng.choice((".99", ".50", ".95"))
        return rng.choice("$€£") + amount

    return draw


def _date(first_year: int, last_year: int) -> Draw:
    def draw(rng: random.Random) -> str:
        return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(first_year, last_year)}"

    return draw


def _day_of_year(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"


def _clock(rng: random.Random) -> str:
    hour = rng.choice((7, 8, 9, 10, 11, 1, 2, 3, 4, 5))
    return f"{hour}:{rng.choice((0, 15, 30, 45)):02d} {'AM' if hour >= 7 else 'PM'}"


def _letters(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(_CODE_LETTERS) for _ in range(k))


def _code(rng: random.Random) -> str:
    """Access or model codes in a few shapes: "K7-415", "QX-2048", "381-BT"."""
    shape = rng.randrange(3)
    if shape == 0:
        return f"{_letters(rng, 1)}{rng.randint(1, 9)}-{rng.randint(100, 999)}"
    if shape == 1:
        return f"{_letters(rng, 2)}-{rng.randint(1000, 9999)}"
    return f"{rng.randint(100, 999)}-{_letters(rng, 2)}"


def _form_number(rng: random.Random) -> str:
    return f"{_letters(rng, 2)}-{rng.randint(10, 99)}"


def _room(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"Room {rng.randint(1, 9)}{rng.randint(0, 4)}{rng.randint(1, 9)}"
    return f"Room {rng.randint(1, 9)}{_letters(rng, 1)}"


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 250)} {rng.choice(STREET_NAMES)} {rng.choice(STREET_TYPES)}"


def _dimensions(rng: random.Random) -> str:
    a, b, c = sorted((rng.randint(2, 60) for _ in range(3)), reverse=True)
    return f"{a} by {b} by {c} {rng.choice(('centimeters', 'inches'))}"


def _word(rng: random.Random, syllables: int) -> str:
    """An invented, pronounceable word ("Zorblax", "Quibdo"): no pretrained model knows a fact about it."""
    parts = []
    for _ in range(syllables):
        parts.append(rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if rng.random() < 0.5 else ""))
    return "".join(parts).capitalize()


def _product_name(rng: random.Random) -> str:
    name = _word(rng, rng.choice((2, 2, 3))) + rng.choice(PRODUCT_SUFFIXES)
    if rng.random() < 0.2:
        name += f" {_letters(rng, 1)}{rng.randint(1, 9)}"
    return name


def _procedure_name(rng: random.Random) -> str:
    return f"{_word(rng, 2)} {rng.choice(PROCEDURE_KINDS)}"


def _maker(rng: random.Random) -> str:
    return f"{_word(rng, 2)} {rng.choice(MAKER_TAILS)}"


def _employer(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_HEADS)} {rng.choice(COMPANY_TAILS)}"


_STORAGE = tuple(f"{n} gigabytes" for n in (16, 32, 64, 128, 256, 512)) + ("2 terabytes", "4 terabytes")
_DURATION_SHORT = _measure(("second", "seconds", _grid(10, 90, 5)), ("minute", "minutes", _grid(2, 45)))
_DURATION_TASK = _measure(("minute", "minutes", _grid(5, 55, 5)), ("hour", "hours", _grid(1, 6, 0.5)))
_DURATION_CYCLE = _measure(
    ("day", "days", _grid(10, 90, 10)), ("week", "weeks", _grid(2, 12)), ("month", "months", _grid(2, 18)),
    ("year", "years", _grid(2, 5)),
)  # fmt: skip
_DURATION_NOTICE = _measure(
    ("hour", "hours", ("24", "48", "72")), ("day", "days", _grid(2, 10)), ("week", "weeks", _grid(2, 4)),
    ("working day", "working days", _grid(2, 10)),
)  # fmt: skip


# ----------------------------------------------------------------------------- attributes
@dataclass(frozen=True)
class Attribute:
    """One kind of fact: how its value is drawn, stated and asked.

    Templates use ``{v}`` for the value (exactly once, so the answer is verbatim in the text),
    ``{a}`` for the value's indefinite article ("a"/"an"), and in documents ``{s}`` for the subject.
    """

    name: str
    genre: str
    draw: Draw
    statements: tuple[str, ...]  # the last N_HELDOUT are the held-out phrasings
    questions: tuple[str, ...]

    @property
    def train_statements(self) -> tuple[str, ...]:
        return self.statements[:-N_HELDOUT]

    @property
    def heldout_statements(self) -> tuple[str, ...]:
        return self.statements[-N_HELDOUT:]


def _lines(block: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in block.strip().splitlines() if line.strip())


def _attr(name: str, genre: str, draw: Draw, statements: str, questions: str) -> Attribute:
    """Templates are written one per line; the last two statement lines are the held-out phrasings."""
    return Attribute(name, genre, draw, _lines(statements), _lines(questions))


_PROFILE = (
    _attr("name", "profile", _full_name, """
        My name is {v}.
        I'm {v}, by the way.
        Hi there, I'm {v}.
        Everyone knows me as {v}.
        You can put me down as {v}.
        Let me introduce myself: {v}.
        For the record, my full name is {v}.
        I go by {v}.
        {v} is the name on my passport.
        People call me {v}.
    """, """
        What is my name?
        What's my full name?
        Do you remember what my name is?
    """),
    _attr("city", "profile", _pick(CITIES), """
        I live in {v}.
        These days I'm based in {v}.
        My home is in {v}.
        I moved to {v} a few years ago.
        Right now I'm living in {v}.
        My apartment is in {v}.
        I've made my home in {v}.
        Home for me is {v} these days.
        {v} is where I live now.
        I rent a small place in {v}.
    """, """
        Where do I live?
        What city do I live in?
        Which city is my home?
    """),
    _attr("hometown", "profile", _pick(CITIES), """
        I grew up in {v}.
        I was born in {v}.
        My hometown is {v}.
        I'm originally from {v}.
        I spent my childhood in {v}.
        My family comes from {v}.
        I was raised in {v}.
        My parents still live in {v}, where I grew up.
        {v} is where I grew up.
        As a kid I lived in {v}.
    """, """
        Where did I grow up?
        What is my hometown?
        Where am I originally from?
    """),
    _attr("address", "profile", _address, """
        I live at {v}.
        My address is {v}.
        My place is at {v}.
        You can send mail to {v}.
        Our house is at {v}.
        If you need my address, it's {v}.
        Packages for me go to {v}.
        My front door is at {v}.
        Home for me is the house at {v}.
        I've lived at {v} for years.
    """, """
        What is my address?
        Where should mail for me be sent?
        What's my street address?
    """),
    _attr("job", "profile", _pick(JOBS), """
        I work as {a} {v}.
        My job title is {v}.
        I've been {a} {v} for about ten years.
        For a living, I'm {a} {v}.
        I'm working as {a} {v} these days.
        I earn my living as {a} {v}.
        My job? I'm {a} {v}.
        I trained to be {a} {v} and I love it.
        Professionally, I'm {a} {v}.
        I spend my working days as {a} {v}.
    """, """
        What do I do for a living?
        What is my job?
        What's my profession?
    """),
    _attr("employer", "profile", _employer, """
        I work at {v}.
        My employer is {v}.
        I've got a job at {v}.
        I'm employed by {v}.
        These days I work for {v}.
        My company is {v}.
        My paycheck comes from {v}.
        I joined {v} last year.
        {v} is the company I work for.
        I've been with {v} for a while now.
    """, """
        Where do I work?
        Who is my employer?
        What company do I work for?
    """),
    _attr("pet_kind", "profile", _pick(PET_KINDS), """
        I have {a} {v}.
        My pet is {a} {v}.
        I own {a} {v}.
        At home, there's {a} {v}.
        I live with {a} {v}.
        We adopted {a} {v} last year.
        My only pet is {a} {v}.
        I share my home with {a} {v}.
        There's {a} {v} waiting for me at home.
        I take care of {a} {v}.
    """, """
        What kind of pet do I have?
        What animal do I have at home?
        What is my pet?
    """),
    _attr("pet_name", "profile", _pick(PET_NAMES), """
        My pet is called {v}.
        My pet's name is {v}.
        I named my pet {v}.
        We call our pet {v}.
        {v} is the name of my pet.
        My little buddy at home is named {v}.
        Our family pet goes by {v}.
        I'm always buying treats for my pet, {v}.
        My pet answers to {v}.
        Every morning my pet {v} wakes me up.
    """, """
        What is my pet's name?
        What did I name my pet?
        What's my pet called?
    """),
    _attr("sister", "profile", _pick(FEMALE_NAMES), """
        My sister is called {v}.
        My sister's name is {v}.
        I have a sister named {v}.
        {v} is my older sister.
        My little sister {v} is visiting soon.
        I'm meeting my sister {v} for lunch.
        My younger sister is {v}.
        I talked to my sister {v} yesterday.
        {v} is the name of my sister.
        Growing up, I shared a room with my sister {v}.
    """, """
        What is my sister's name?
        What's my sister called?
        Who is my sister?
    """),
    _attr("brother", "profile", _pick(MALE_NAMES), """
        My brother is called {v}.
        My brother's name is {v}.
        I have a brother named {v}.
        {v} is my older brother.
        My little brother {v} just started college.
        I'm helping my brother {v} move this weekend.
        My younger brother is {v}.
        I called my brother {v} last night.
        {v} is the name of my brother.
        When we were kids, my brother {v} and I built a treehouse.
    """, """
        What is my brother's name?
        What's my brother called?
        Who is my brother?
    """),
    _attr("best_friend", "profile", _full_name, """
        My best friend is {v}.
        My best friend's name is {v}.
        {v} has been my best friend since school.
        I'm going to a concert with my best friend, {v}.
        My closest friend is {v}.
        I've known my best friend {v} for twenty years.
        {v} is my best friend.
        I trust my best friend, {v}, with everything.
        Nobody knows me better than my best friend {v}.
        {v} and I have been best friends forever.
    """, """
        Who is my best friend?
        What's my best friend's name?
        What is the name of my best friend?
    """),
    _attr("boss", "profile", _full_name, """
        My boss is {v}.
        My manager's name is {v}.
        I report to {v}.
        At work, my manager is {v}.
        {v} is my boss.
        My team is led by {v}.
        I have a meeting with my boss, {v}, tomorrow.
        The person I report to at work is {v}.
        {v} runs my team at work.
        Every Monday I check in with my manager, {v}.
    """, """
        Who is my boss?
        What's my manager's name?
        Who do I report to at work?
    """),
    _attr("birthday", "profile", _day_of_year, """
        My birthday is {v}.
        I was born on {v}.
        I celebrate my birthday on {v}.
        Every year on {v}, I turn a year older.
        {v} is my birthday.
        My birthday falls on {v}.
        I'm having a party on {v}, my birthday.
        Each year my family celebrates me on {v}.
        {v} is the day I was born.
        My friends always call me on {v}, my birthday.
    """, """
        When is my birthday?
        What day is my birthday?
        On what date was I born?
    """),
    _attr("age", "profile", lambda rng: str(rng.randint(19, 78)), """
        I'm {v} years old.
        I just turned {v}.
        I'm {v} now.
        My age is {v}.
        I turned {v} this year.
        I'll be {v} for a few more months.
        I'm {v} years young.
        At {v}, I finally learned to swim.
        I've been alive for {v} years.
        My age? {v}.
    """, """
        How old am I?
        What is my age?
        What age am I?
    """),
    _attr("car", "profile", _pick(CARS), """
        I drive {a} {v}.
        My car is {a} {v}.
        I bought {a} {v} last spring.
        I get around in {a} {v}.
        My daily car is {a} {v}.
        I just had my {v} serviced.
        I commute in my {v}.
        The car in my driveway is {a} {v}.
        Parked outside my place is my {v}.
        My trusty {v} never lets me down.
    """, """
        What car do I drive?
        What kind of car do I have?
        What's my car?
    """),
    _attr("allergy", "profile", _pick(ALLERGIES), """
        I'm allergic to {v}.
        I have an allergy to {v}.
        I can't be around {v} because of my allergy.
        My doctor confirmed my allergy to {v}.
        I react badly to {v}.
        Please keep {v} away from me, I'm allergic.
        I get a bad reaction from {v}.
        My one allergy is {v}.
        I always carry medicine in case I come near {v}.
        Just being near {v} makes me sick.
    """, """
        What am I allergic to?
        What is my allergy?
        What should I stay away from because of my allergy?
    """),
    _attr("favorite_color", "profile", _pick(FAVORITE_COLORS), """
        My favorite color is {v}.
        I love the color {v}.
        I always pick {v} when I can.
        Most of my clothes are {v}.
        I painted my bedroom {v} because I love that color.
        If I could, I'd make everything {v}.
        The color I like best is {v}.
        I've always been drawn to {v}.
        Nothing makes me happier than the color {v}.
        My favorite shade has always been {v}.
    """, """
        What is my favorite color?
        Which color do I like best?
        What color should you pick for me?
    """),
    _attr("instrument", "profile", _pick(INSTRUMENTS), """
        I play the {v}.
        I've been learning the {v}.
        I practice the {v} every evening.
        My instrument is the {v}.
        I took up the {v} last year.
        I can play the {v} pretty well.
        In my band, I'm on the {v}.
        I've played the {v} since I was a kid.
        Music-wise, the {v} is my thing.
        Most weekends you'll find me playing the {v}.
    """, """
        What instrument do I play?
        Which instrument is mine?
        What musical instrument do I play?
    """),
)  # fmt: skip

_PREFERENCE = (
    _attr("drink", "preference", _pick(DRINKS), """
        My favorite drink is {v}.
        I love {v}.
        I could drink {v} all day.
        When I order a drink, it's usually {v}.
        I always start my morning with {v}.
        My go-to drink is {v}.
        If you ever get me a drink, make it {v}.
        I never get tired of {v}.
        Nothing hits the spot like {v}.
        I never say no to {v}.
    """, """
        What should I drink?
        What drink would you recommend for me?
        What's my favorite drink?
    """),
    _attr("dish", "preference", _pick(DISHES), """
        My favorite food is {v}.
        I could eat {v} every day.
        Whenever I eat out, I order {v}.
        My comfort food is {v}.
        I'm a huge fan of {v}.
        For dinner, I'd pick {v} over anything.
        The dish I love most is {v}.
        I cook {v} at least once a week.
        If I had one last meal, it would be {v}.
        I'm always in the mood for {v}.
    """, """
        What should I eat tonight?
        What food would you recommend for me?
        What's my favorite dish?
    """),
    _attr("cuisine", "preference", _pick(CUISINES), """
        My favorite cuisine is {v}.
        I love {v} food.
        {v} food is my favorite.
        When we go out, I always want {v} food.
        I'd pick {a} {v} restaurant any day.
        I could eat {v} food every week.
        Nothing beats a good {v} meal for me.
        My top choice for dinner is always {v} food.
        Take me to {a} {v} place and I'm happy.
        {v} cooking is what I crave most.
    """, """
        What kind of restaurant should we go to?
        Which cuisine do I like best?
        What cuisine would you recommend for me?
    """),
    _attr("dessert", "preference", _pick(DESSERTS), """
        My favorite dessert is {v}.
        I can never say no to {v}.
        For dessert, I always order {v}.
        I have a weakness for {v}.
        My birthday treat is always {v}.
        I'd pick {v} over any other sweet.
        The best dessert in the world is {v}.
        I bake {v} whenever I get the chance.
        Save room for {v}, that's my rule.
        Dessert for me means {v}.
    """, """
        What dessert should I order?
        What's my favorite dessert?
        Which dessert would you pick for me?
    """),
    _attr("fruit", "preference", _pick(FRUITS), """
        My favorite fruit is {v}.
        I snack on {v} all the time.
        I always keep {v} in my kitchen.
        I eat {v} almost every day.
        I could live on {v}.
        When fruit is in season, I buy {v}.
        Nothing is as refreshing as {v}.
        For a healthy snack, I reach for {v}.
        My fruit bowl is always full of {v}.
        In summer I eat {v} by the handful.
    """, """
        What fruit should I buy?
        What's my favorite fruit?
        Which fruit would you recommend for me?
    """),
    _attr("music", "preference", _pick(MUSIC), """
        I listen to {v} all the time.
        My favorite music is {v}.
        I'm really into {v} right now.
        When I'm working, I put on {v}.
        I love {v} more than any other music.
        Most of my playlists are {v}.
        I've been {a} {v} fan for years.
        My car radio is always on {v}.
        Put on some {v} and I'm instantly happy.
        The music that speaks to me is {v}.
    """, """
        What music should I listen to?
        What kind of music do I like?
        What music would you put on for me?
    """),
    _attr("hobby", "preference", _pick(HOBBIES), """
        My favorite hobby is {v}.
        In my free time I do {v}.
        I spend most weekends on {v}.
        I've been getting into {v} lately.
        I really enjoy {v}.
        I love spending my evenings on {v}.
        My big passion outside work is {v}.
        I could spend hours on {v}.
        Give me a free afternoon and I'll spend it on {v}.
        Lately {v} is all I want to do.
    """, """
        What hobby should I do this weekend?
        What's my favorite hobby?
        What activity would you suggest for me?
    """),
    _attr("board_game", "preference", _pick(BOARD_GAMES), """
        My favorite board game is {v}.
        I love playing {v}.
        On game nights, I always want to play {v}.
        I could play {v} for hours.
        I'm pretty good at {v}.
        Every Friday my friends and I play {v}.
        The game I enjoy most is {v}.
        I never turn down a round of {v}.
        Bring out {v} and I'm in.
        No game beats {v} in my opinion.
    """, """
        What board game should we play?
        What's my favorite board game?
        Which game would you suggest for game night?
    """),
    _attr("destination", "preference", _pick(DESTINATIONS), """
        My dream trip is to {v}.
        I've always wanted to visit {v}.
        Next year I'd love to travel to {v}.
        If I could go anywhere, I'd go to {v}.
        I'm saving up for a trip to {v}.
        My favorite place to travel is {v}.
        I keep looking at flights to {v}.
        My next vacation should be in {v}.
        A holiday in {v} is at the top of my list.
        I daydream about {v} all the time.
    """, """
        Where should I travel next?
        What's my dream destination?
        Where would you suggest I go on vacation?
    """),
    _attr("author", "preference", _pick(AUTHORS), """
        My favorite author is {v}.
        I've read every book by {v}.
        I love novels by {v}.
        Lately I've been reading a lot of {v}.
        Nobody writes like {v}.
        I'm a big fan of {v}'s books.
        I always buy the new book by {v}.
        On my nightstand there's always something by {v}.
        The writer I admire most is {v}.
        Give me a book by {v} and I'm happy for a week.
    """, """
        Which author should I read?
        Who is my favorite author?
        Whose books would you recommend for me?
    """),
    _attr("seat", "preference", _pick(SEATS), """
        I always ask for {a} {v}.
        When I fly, I want {a} {v}.
        I prefer {a} {v} on trains and planes.
        Please book me {a} {v} when you can.
        I'm happiest in {a} {v}.
        I never take anything but {a} {v}.
        On long trips I need {a} {v}.
        My favorite place to sit is {a} {v}.
        Book me {a} {v} or I'll be grumpy all trip.
        Give me {a} {v} and I'll sleep the whole way.
    """, """
        What seat should you book for me?
        Which seat do I prefer?
        Where do I like to sit when I travel?
    """),
    _attr("film_genre", "preference", _pick(FILM_GENRES), """
        My favorite kind of movie is {v}.
        I love watching {v}.
        Movie night for me means {v}.
        I'm always up for {v}.
        Most of what I watch is {v}.
        I could watch {v} every night.
        I'm a sucker for {v}.
        My streaming list is full of {v}.
        Nothing relaxes me like a couple of hours of {v}.
        Put on {v} and I'm happy.
    """, """
        What movie should I watch tonight?
        What kind of films do I like?
        What would you recommend for my movie night?
    """),
    _attr("book_genre", "preference", _pick(BOOK_GENRES), """
        I mostly read {v}.
        My favorite books are {v}.
        I'm always reading {v}.
        My bookshelf is full of {v}.
        I love curling up with {v}.
        In the library, I head straight for {v}.
        I can't get enough of {v}.
        On vacation I bring {v} to read.
        Reading {v} is my favorite way to relax.
        Most nights I fall asleep reading {v}.
    """, """
        What should I read next?
        What kind of books do I like?
        What genre of book would you recommend for me?
    """),
    _attr("watch_sport", "preference", _pick(WATCH_SPORTS), """
        My favorite sport to watch is {v}.
        I watch {v} every weekend.
        I follow {v} closely.
        On TV I mostly watch {v}.
        I'm a huge {v} fan.
        I could watch {v} for hours.
        I get really excited about {v} on TV.
        The sport I love to watch is {v}.
        Whenever {v} is on, I'm glued to the screen.
        Tickets to watch {v} live would make my year.
    """, """
        What sport should I watch this weekend?
        Which sport do I like to watch?
        What sport would you put on TV for me?
    """),
    _attr("room_temperature", "preference", _measure(
        ("degree Celsius", "degrees Celsius", _grid(17, 25)), ("degree Fahrenheit", "degrees Fahrenheit", _grid(62, 77))
    ), """
        I like my room at {v}.
        I set my thermostat to {v}.
        I sleep best at {v}.
        For me, the perfect room temperature is {v}.
        Please keep the house at {v}.
        I feel comfortable at {v}.
        My heating is always set to {v}.
        I'm happiest when it's {v} indoors.
        Anything warmer or colder than {v} bothers me.
        My ideal indoor temperature is {v}.
    """, """
        What temperature should you set the thermostat to?
        What room temperature do I like?
        How warm do I like the house?
    """),
    _attr("meeting_time", "preference", _clock, """
        I prefer meetings at {v}.
        Please schedule my calls for {v}.
        The best time to reach me is {v}.
        I'm at my sharpest around {v}.
        Book my meetings at {v} if you can.
        I like to start my calls at {v}.
        My calendar works best at {v}.
        I'm always free at {v}.
        If we need to talk, {v} suits me best.
        My favorite slot for meetings is {v}.
    """, """
        What time should you book my meetings?
        When do I like to have meetings?
        What meeting time do I prefer?
    """),
    _attr("contact_method", "preference", _pick(CONTACT_METHODS), """
        My preferred way to stay in touch is {v}.
        I'd rather get {v} than anything else.
        I answer {v} faster than anything else.
        If you need me, use {v}.
        I always respond to {v}.
        I like to keep in touch through {v}.
        The easiest way to get hold of me is {v}.
        For anything important, I prefer {v}.
        When it comes to staying in touch, {v} is my favorite.
        I check {v} all day long.
    """, """
        How should you contact me?
        What is my preferred way to be contacted?
        How do I like people to reach me?
    """),
    _attr("flowers", "preference", _pick(FLOWERS), """
        My favorite flowers are {v}.
        I always buy {v} at the market.
        I grow {v} in my garden.
        Nothing cheers me up like {v}.
        If you send me flowers, make them {v}.
        I love the smell of {v}.
        My balcony is full of {v}.
        For my birthday, I'd love some {v}.
        A vase of {v} makes any room better for me.
        The flowers I like best are {v}.
    """, """
        What flowers should you send me?
        What are my favorite flowers?
        Which flowers would you buy for me?
    """),
)  # fmt: skip

_PRODUCT = (
    _attr("maker", "product", _maker, """
        The {s} is made by {v}.
        {v} makes the {s}.
        The {s} is a product of {v}.
        The company behind the {s} is {v}.
        The {s} comes from {v}.
        {v} produces the {s}.
        The maker of the {s} is {v}.
        The {s} is manufactured by {v}.
        Every {s} is built by {v}.
        {v} is the brand behind the {s}.
    """, """
        Who makes the {s}?
        Which company produces the {s}?
        What is the brand behind the {s}?
    """),
    _attr("category", "product", _pick(PRODUCT_CATEGORIES), """
        The {s} is {a} {v}.
        The {s} is a compact {v}.
        At heart, the {s} is {a} {v}.
        The {s} works as {a} {v}.
        The {s} is sold as {a} {v}.
        Think of the {s} as {a} {v}.
        The {s} belongs to the {v} category.
        In short, the {s} is {a} {v}.
        You could describe the {s} as {a} {v}.
        Customers use the {s} as {a} {v}.
    """, """
        What kind of product is the {s}?
        What is the {s}?
        What type of device is the {s}?
    """),
    _attr("price", "product", _money(9, 1999), """
        The {s} costs {v}.
        The {s} sells for {v}.
        The retail price of the {s} is {v}.
        You can buy the {s} for {v}.
        At launch, the {s} was priced at {v}.
        Expect to pay {v} for the {s}.
        The {s} has a price tag of {v}.
        In stores, the {s} goes for {v}.
        One {s} will set you back {v}.
        The {s} is available at a price of {v}.
    """, """
        How much does the {s} cost?
        What is the price of the {s}?
        What does the {s} sell for?
    """),
    _attr("weight", "product", _measure(
        ("gram", "grams", _grid(20, 950, 5)), ("kilogram", "kilograms", _grid(1.2, 25, 0.1)),
        ("pound", "pounds", _grid(1.5, 40, 0.5))
    ), """
        The {s} weighs {v}.
        The {s} has a weight of {v}.
        On a scale, the {s} comes in at {v}.
        The {s} weighs just {v}.
        The total weight of the {s} is {v}.
        Without the box, the {s} weighs {v}.
        The {s} tips the scales at {v}.
        Carrying the {s} means lifting {v}.
        Expect the {s} to weigh about {v}.
        Weighing {v}, the {s} is easy to move.
    """, """
        How much does the {s} weigh?
        What is the weight of the {s}?
        How heavy is the {s}?
    """),
    _attr("release_date", "product", _date(2024, 2036), """
        The {s} was released on {v}.
        The {s} goes on sale on {v}.
        The release date of the {s} is {v}.
        The {s} first hit stores on {v}.
        The {s} launched on {v}.
        {v} is the launch date of the {s}.
        Customers could first buy the {s} on {v}.
        The {s} came out on {v}.
        Shipping of the {s} began on {v}.
        The first {s} was sold on {v}.
    """, """
        When was the {s} released?
        What is the release date of the {s}?
        When did the {s} come out?
    """),
    _attr("battery_life", "product", _measure(("hour", "hours", _grid(2, 48, 0.5))), """
        The battery of the {s} lasts {v}.
        The {s} runs for {v} on a single charge.
        On a full charge, the {s} lasts {v}.
        Battery life on the {s} is {v}.
        The {s} offers {v} of battery life.
        You get {v} of use from one charge of the {s}.
        The {s} keeps going for {v} before it needs charging.
        A charged {s} works for {v}.
        Expect about {v} from the {s} battery.
        The {s} can stay unplugged for {v}.
    """, """
        How long does the battery of the {s} last?
        What is the battery life of the {s}?
        How many hours does the {s} run on one charge?
    """),
    _attr("charging_time", "product", _measure(
        ("minute", "minutes", _grid(20, 95, 5)), ("hour", "hours", _grid(1, 8, 0.5))
    ), """
        The {s} charges fully in {v}.
        A full charge of the {s} takes {v}.
        Charging the {s} takes {v}.
        The {s} needs {v} to charge.
        Plugged in, the {s} is ready in {v}.
        It takes {v} to charge the {s}.
        The {s} recharges in {v}.
        From empty, the {s} charges in {v}.
        Give the {s} {v} on the charger.
        The {s} is back to full after {v}.
    """, """
        How long does the {s} take to charge?
        What is the charging time of the {s}?
        How long until the {s} is fully charged?
    """),
    _attr("color", "product", _pick(PRODUCT_COLORS), """
        The {s} comes in {v}.
        The {s} is available in {v}.
        The color of the {s} is {v}.
        The {s} has {a} {v} finish.
        The {s} is finished in {v}.
        Every {s} is painted {v}.
        The case of the {s} is {v}.
        The {s} ships in {a} {v} color.
        You will recognize the {s} by its {v} color.
        In {v}, the {s} stands out on any desk.
    """, """
        What color is the {s}?
        What color does the {s} come in?
        What is the finish of the {s}?
    """),
    _attr("material", "product", _pick(MATERIALS), """
        The {s} is made of {v}.
        The {s} is built from {v}.
        The shell of the {s} is {v}.
        The casing of the {s} is made from {v}.
        The {s} uses {a} {v} body.
        The main material of the {s} is {v}.
        The outer frame of the {s} is {v}.
        The {s} is crafted from {v}.
        Most of the {s} is {v}.
        The {s} feels solid thanks to its {v} housing.
    """, """
        What is the {s} made of?
        What material is the {s}?
        Which material is used for the {s}?
    """),
    _attr("factory_city", "product", _pick(CITIES), """
        The {s} is made in {v}.
        The {s} is assembled in {v}.
        The factory that builds the {s} is in {v}.
        Every {s} is produced in {v}.
        The {s} is manufactured in {v}.
        Production of the {s} takes place in {v}.
        The {s} comes off the line in {v}.
        The {s} ships from a plant in {v}.
        {v} is home to the factory that makes the {s}.
        Workers in {v} put together each {s}.
    """, """
        Where is the {s} made?
        In which city is the {s} built?
        Where is the factory for the {s}?
    """),
    _attr("warranty", "product", _measure(
        ("year", "years", _grid(1, 5)), ("month", "months", ("6", "12", "18", "24", "36")),
        ("day", "days", ("30", "60", "90")),
    ), """
        The {s} has a warranty of {v}.
        The warranty on the {s} lasts {v}.
        The {s} is covered for {v}.
        Every {s} is guaranteed for {v}.
        Repairs on the {s} are free for {v}.
        The warranty for the {s} runs for {v}.
        You are covered for {v} after buying the {s}.
        The maker guarantees the {s} for {v}.
        If the {s} breaks within {v}, it is replaced for free.
        Coverage for the {s} ends after {v}.
    """, """
        How long is the warranty on the {s}?
        What warranty does the {s} have?
        How long is the {s} covered?
    """),
    _attr("dimensions", "product", _dimensions, """
        The {s} measures {v}.
        The {s} is {v} in size.
        The dimensions of the {s} are {v}.
        The {s} has a size of {v}.
        Measured edge to edge, the {s} is {v}.
        The outer size of the {s} is {v}.
        The {s} fits in a space of {v}.
        Size-wise, the {s} is {v}.
        Put a tape measure on the {s} and you get {v}.
        The {s} is exactly {v}.
    """, """
        What are the dimensions of the {s}?
        How big is the {s}?
        What size is the {s}?
    """),
    _attr("designer", "product", _full_name, """
        The {s} was designed by {v}.
        The designer of the {s} is {v}.
        {v} designed the {s}.
        The {s} is the work of designer {v}.
        {v} drew the first sketches of the {s}.
        The lead designer on the {s} was {v}.
        The look of the {s} comes from {v}.
        The {s} was created by designer {v}.
        Credit for the design of the {s} goes to {v}.
        It was {v} who shaped the {s}.
    """, """
        Who designed the {s}?
        Who is the designer of the {s}?
        Whose design is the {s}?
    """),
    _attr("model_code", "product", _code, """
        The model number of the {s} is {v}.
        The {s} carries the model code {v}.
        Look for {v} on the label of the {s}.
        The {s} is listed under model {v}.
        The official model number for the {s} is {v}.
        In the catalog, the {s} appears as {v}.
        The {s} has model code {v}.
        When ordering parts, quote {v} for the {s}.
        The sticker under the {s} reads {v}.
        Support staff know the {s} as model {v}.
    """, """
        What is the model number of the {s}?
        What model code does the {s} have?
        Which model number should I quote for the {s}?
    """),
    _attr("storage", "product", _pick(_STORAGE), """
        The {s} has {v} of storage.
        The {s} comes with {v} of memory.
        There is {v} of storage inside the {s}.
        The {s} can hold {v} of data.
        The {s} stores up to {v}.
        Internal storage on the {s} is {v}.
        The {s} offers {v} of space for files.
        Built into the {s} is {v} of memory.
        You can save {v} of files on the {s}.
        The {s} packs {v} of storage.
    """, """
        How much storage does the {s} have?
        What is the storage capacity of the {s}?
        How much data can the {s} hold?
    """),
    _attr("noise_level", "product", _measure(("decibel", "decibels", _grid(20, 75))), """
        The {s} makes {v} of noise.
        The noise level of the {s} is {v}.
        The {s} is rated at {v} of noise.
        When running, the {s} produces {v} of sound.
        The {s} stays below {v} when it runs.
        The loudest the {s} gets is {v}.
        The {s} hums along at only {v}.
        Sound tests put the {s} at {v}.
        You will hear the {s} at about {v}.
        Even at full power, the {s} is no louder than {v}.
    """, """
        How loud is the {s}?
        What is the noise level of the {s}?
        How much noise does the {s} make?
    """),
    _attr("power", "product", _measure(("watt", "watts", _grid(5, 1800, 5))), """
        The {s} uses {v} of power.
        The {s} draws {v} from the wall.
        The power rating of the {s} is {v}.
        The {s} is rated at {v}.
        At full load, the {s} consumes {v}.
        The {s} needs {v} to run.
        The {s} pulls {v} when it is on.
        Running the {s} takes {v} of electricity.
        Plan for {v} of power when you plug in the {s}.
        The {s} runs on {v} of power.
    """, """
        How much power does the {s} use?
        What is the power rating of the {s}?
        How many watts does the {s} draw?
    """),
    _attr("max_temperature", "product", _measure(("degree Celsius", "degrees Celsius", _grid(35, 70))), """
        The {s} works at temperatures up to {v}.
        The {s} can handle heat up to {v}.
        The highest safe temperature for the {s} is {v}.
        Do not use the {s} above {v}.
        The {s} is rated for use up to {v}.
        Above {v}, the {s} shuts down.
        The {s} stays safe up to {v}.
        Keep the {s} below {v}.
        The {s} should never get hotter than {v}.
        Once it passes {v}, the {s} turns itself off.
    """, """
        What is the maximum temperature for the {s}?
        Up to what temperature does the {s} work?
        How hot can the {s} get before it stops?
    """),
)  # fmt: skip

_PROCEDURE = (
    _attr("steps", "procedure", lambda rng: str(rng.randint(3, 12)), """
        The {s} has {v} steps.
        There are {v} steps in the {s}.
        The {s} takes {v} steps to complete.
        You finish the {s} in {v} steps.
        The {s} is made up of {v} steps.
        Completing the {s} means following {v} steps.
        In total, the {s} involves {v} steps.
        The {s} consists of {v} steps.
        Count on {v} steps for the {s}.
        The {s} is broken into {v} steps.
    """, """
        How many steps does the {s} have?
        How many steps are in the {s}?
        What is the number of steps in the {s}?
    """),
    _attr("tool", "procedure", _pick(TOOLS), """
        You need {a} {v} for the {s}.
        The {s} requires {a} {v}.
        Before starting the {s}, grab {a} {v}.
        The only tool for the {s} is {a} {v}.
        Bring {a} {v} to the {s}.
        The {s} cannot be done without {a} {v}.
        Keep {a} {v} at hand during the {s}.
        For the {s}, have {a} {v} ready.
        Nobody should start the {s} without {a} {v}.
        Make sure you have {a} {v} before the {s}.
    """, """
        What tool do I need for the {s}?
        Which tool does the {s} require?
        What should I bring for the {s}?
    """),
    _attr("wait_time", "procedure", _DURATION_SHORT, """
        During the {s}, wait {v} before the next step.
        The {s} includes a wait of {v}.
        After the first step of the {s}, wait {v}.
        The {s} needs a pause of {v} in the middle.
        Halfway through the {s}, you must wait {v}.
        The waiting time in the {s} is {v}.
        Expect to wait {v} during the {s}.
        The {s} has a waiting period of {v}.
        Leave everything alone for {v} during the {s}.
        The {s} only continues after {v} of waiting.
    """, """
        How long do I have to wait during the {s}?
        What is the waiting time in the {s}?
        How long is the pause in the {s}?
    """),
    _attr("total_time", "procedure", _DURATION_TASK, """
        The whole {s} takes about {v}.
        The {s} takes {v} in total.
        Plan {v} for the {s}.
        From start to finish, the {s} lasts {v}.
        The {s} usually takes {v}.
        Most people complete the {s} in {v}.
        Set aside {v} for the {s}.
        The full {s} runs for {v}.
        Block {v} in your calendar for the {s}.
        All in all, the {s} eats up {v}.
    """, """
        How long does the {s} take?
        How much time should I plan for the {s}?
        What is the total time of the {s}?
    """),
    _attr("contact", "procedure", _full_name, """
        The contact person for the {s} is {v}.
        Questions about the {s} go to {v}.
        {v} is in charge of the {s}.
        If the {s} fails, contact {v}.
        For help with the {s}, ask {v}.
        {v} answers questions about the {s}.
        The person responsible for the {s} is {v}.
        Reach out to {v} about the {s}.
        When in doubt about the {s}, talk to {v}.
        {v} owns the {s} and can help.
    """, """
        Who is the contact person for the {s}?
        Who should I ask about the {s}?
        Who is responsible for the {s}?
    """),
    _attr("department", "procedure", _pick(DEPARTMENTS), """
        The {s} is handled by the {v} team.
        The {v} team runs the {s}.
        The {s} belongs to the {v} department.
        The {v} department manages the {s}.
        Requests for the {s} are processed by {v}.
        The {s} is owned by {v}.
        Problems with the {s} are passed to {v}.
        The {v} team keeps the {s} up to date.
        Everything about the {s} is organized by {v}.
        Send any {s} paperwork to {v}.
    """, """
        Which department handles the {s}?
        What team runs the {s}?
        Who processes the {s}?
    """),
    _attr("room", "procedure", _room, """
        The {s} takes place in {v}.
        Go to {v} for the {s}.
        The {s} is done in {v}.
        You will find everything for the {s} in {v}.
        The {s} happens in {v}.
        Head to {v} to start the {s}.
        The equipment for the {s} is kept in {v}.
        For the {s}, report to {v}.
        {v} is where the {s} is done.
        The {s} is carried out in {v}.
    """, """
        Which room is the {s} in?
        Where does the {s} take place?
        What room should I go to for the {s}?
    """),
    _attr("floor", "procedure", _pick(FLOORS), """
        The {s} is on the {v}.
        You will find the {s} desk on the {v}.
        The {s} is handled on the {v}.
        Take the elevator to the {v} for the {s}.
        The office for the {s} is on the {v}.
        The {s} always happens on the {v}.
        Go up to the {v} for the {s}.
        Staff for the {s} sit on the {v}.
        The {s} team works from the {v}.
        You can do the {s} on the {v} only.
    """, """
        Which floor is the {s} on?
        What floor should I go to for the {s}?
        On which floor does the {s} happen?
    """),
    _attr("deadline", "procedure", _date(2025, 2036), """
        The deadline for the {s} is {v}.
        The {s} must be finished by {v}.
        Complete the {s} before {v}.
        The {s} closes on {v}.
        The last day for the {s} is {v}.
        Everyone has to do the {s} by {v}.
        After {v}, the {s} is no longer accepted.
        The cutoff date for the {s} is {v}.
        Do not leave the {s} later than {v}.
        Late {s} requests after {v} are refused.
    """, """
        What is the deadline for the {s}?
        By when must the {s} be done?
        When is the last day for the {s}?
    """),
    _attr("code", "procedure", _code, """
        The code for the {s} is {v}.
        Enter {v} to start the {s}.
        The {s} asks for the code {v}.
        Type {v} when the {s} begins.
        Use the code {v} for the {s}.
        The access code for the {s} is {v}.
        Key in {v} to unlock the {s}.
        The {s} is unlocked with {v}.
        Punch in {v} and the {s} begins.
        Without the code {v}, the {s} will not start.
    """, """
        What code do I enter for the {s}?
        What is the code for the {s}?
        Which code unlocks the {s}?
    """),
    _attr("extension", "procedure", lambda rng: str(rng.randint(1000, 9999)), """
        For the {s}, call extension {v}.
        The phone extension for the {s} is {v}.
        Dial {v} for help with the {s}.
        The {s} help line is extension {v}.
        Call {v} if the {s} goes wrong.
        Questions about the {s}? Dial extension {v}.
        The {s} hotline is on extension {v}.
        Support for the {s} is reachable at extension {v}.
        Pick up any office phone and dial {v} about the {s}.
        Extension {v} connects you to the {s} team.
    """, """
        What extension should I call about the {s}?
        What is the phone extension for the {s}?
        Which number do I dial for help with the {s}?
    """),
    _attr("form", "procedure", _form_number, """
        The {s} needs form {v}.
        Fill in form {v} for the {s}.
        The form for the {s} is {v}.
        To begin the {s}, submit form {v}.
        The {s} starts with form {v}.
        Form {v} is required for the {s}.
        Use form {v} to request the {s}.
        The paperwork for the {s} is form {v}.
        Nothing happens in the {s} until form {v} is in.
        Attach form {v} to every {s} request.
    """, """
        Which form do I need for the {s}?
        What form is used for the {s}?
        What is the form number for the {s}?
    """),
    _attr("fee", "procedure", _money(5, 250), """
        The {s} costs {v}.
        There is a fee of {v} for the {s}.
        The fee for the {s} is {v}.
        Each {s} is charged at {v}.
        You pay {v} for the {s}.
        The {s} comes with a {v} fee.
        The {s} has a processing fee of {v}.
        A charge of {v} applies to the {s}.
        Budget {v} for the {s}.
        Expect a bill of {v} after the {s}.
    """, """
        How much does the {s} cost?
        What is the fee for the {s}?
        How much do I pay for the {s}?
    """),
    _attr("approver", "procedure", _pick(APPROVERS), """
        The {s} must be approved by the {v}.
        The {v} signs off on the {s}.
        Approval for the {s} comes from the {v}.
        Only the {v} can approve the {s}.
        Ask the {v} to approve the {s}.
        The {s} needs a signature from the {v}.
        The {v} gives the final OK on the {s}.
        Every {s} is checked by the {v}.
        No {s} goes ahead without the {v}.
        The {v} has the last word on the {s}.
    """, """
        Who approves the {s}?
        Who has to sign off on the {s}?
        Whose approval does the {s} need?
    """),
    _attr("frequency", "procedure", _DURATION_CYCLE, """
        The {s} is repeated every {v}.
        You must do the {s} every {v}.
        The {s} comes around every {v}.
        Every {v}, the {s} has to be done again.
        The {s} happens once every {v}.
        Staff redo the {s} every {v}.
        Plan to repeat the {s} every {v}.
        The {s} is due again every {v}.
        Once {v} have passed, repeat the {s}.
        The cycle for the {s} is {v}.
    """, """
        How often must the {s} be done?
        How often is the {s} repeated?
        How frequently does the {s} happen?
    """),
    _attr("start_time", "procedure", _clock, """
        The {s} starts at {v}.
        The {s} is scheduled for {v}.
        The {s} begins every day at {v}.
        Be ready for the {s} at {v}.
        The {s} kicks off at {v}.
        Show up at {v} for the {s}.
        The start time of the {s} is {v}.
        The {s} opens at {v}.
        At {v} sharp, the {s} begins.
        Arrive by {v} for the {s}.
    """, """
        What time does the {s} start?
        When does the {s} begin?
        What is the start time of the {s}?
    """),
    _attr("max_attempts", "procedure", lambda rng: str(rng.randint(2, 9)), """
        You get {v} attempts at the {s}.
        The {s} allows {v} tries.
        After {v} failed attempts, the {s} locks.
        The {s} can be tried {v} times.
        You may attempt the {s} up to {v} times.
        The maximum number of tries for the {s} is {v}.
        Only {v} attempts at the {s} are allowed.
        The {s} gives you {v} chances.
        Fail the {s} {v} times and you are locked out.
        The {s} stops after {v} wrong tries.
    """, """
        How many attempts do I get at the {s}?
        How many tries does the {s} allow?
        How many times can I try the {s}?
    """),
    _attr("notice", "procedure", _DURATION_NOTICE, """
        The {s} needs {v} of notice.
        Give {v} notice before the {s}.
        Book the {s} at least {v} ahead.
        Requests for the {s} need {v} of warning.
        Tell the team {v} before the {s}.
        The notice period for the {s} is {v}.
        Announce the {s} {v} in advance.
        Schedule the {s} {v} beforehand.
        Without {v} of notice, the {s} cannot happen.
        The {s} has to be requested {v} early.
    """, """
        How much notice does the {s} need?
        What is the notice period for the {s}?
        How far ahead must I book the {s}?
    """),
)  # fmt: skip

ATTRIBUTES: tuple[Attribute, ...] = _PROFILE + _PREFERENCE + _PRODUCT + _PROCEDURE
ATTRIBUTE_BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
ATTRIBUTES_BY_GENRE: dict[str, tuple[Attribute, ...]] = {
    g: tuple(a for a in ATTRIBUTES if a.genre == g) for g in GENRES
}
USER_ATTRIBUTES: tuple[Attribute, ...] = _PROFILE + _PREFERENCE
"""What :class:`EnglishFacts` draws from: everything a user can say about themselves."""

# ----------------------------------------------------------------------------- conversation and document glue
ACKNOWLEDGEMENTS = (
    "Got it.", "Nice!", "Thanks for telling me.", "Good to know.", "Noted.", "Okay, I'll remember that.",
    "Great, thanks for sharing.", "That's lovely.", "Sounds good.", "I'll keep that in mind.", "Oh, nice.",
    "Thanks, noted.", "Cool!", "Understood.", "Got it, thanks!", "That's great to hear.",
)  # fmt: skip
OPENERS: tuple[tuple[str, str], ...] = (
    ("Hi!", "Hello! How can I help you today?"),
    ("Hey there.", "Hi! What's on your mind?"),
    ("Good morning!", "Good morning! How are you?"),
    ("Hello, are you there?", "Yes, I'm here. What can I do for you?"),
    ("Hi, I'd like to chat for a bit.", "Sure, I'd be glad to chat."),
    ("Good evening.", "Good evening! How was your day?"),
)
SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("How are you today?", "I'm doing well, thanks for asking. How about you?"),
    ("It's so hot outside today.", "Stay cool and take it easy."),
    ("I had a really long day.", "Sorry to hear that. I hope you can rest tonight."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    ("Can you believe it's almost the weekend?", "The week went by fast!"),
    ("I can't decide what to do this evening.", "Maybe something relaxing would be nice."),
    ("It's raining again.", "Perfect weather for staying in."),
    ("Thanks for your help earlier.", "You're welcome! Happy to help."),
    ("I'm a bit tired today.", "Take it easy. A short break might help."),
    ("What a busy week.", "It sounds like you've earned a rest."),
    ("Do you ever get bored?", "Not really. I enjoy our chats."),
    ("I just got back from a walk.", "That sounds refreshing."),
    ("My internet was slow this morning.", "That's annoying. I hope it's better now."),
    ("Any tips for staying focused?", "Short breaks and a clear to-do list help a lot."),
    ("I think I need a break.", "A little time off can do wonders."),
    ("Guess what, I finally cleaned my desk.", "Well done! That always feels good."),
    ("The traffic was terrible today.", "That's frustrating. Glad you made it."),
    ("I can't believe how fast this year is going.", "Time really flies."),
    ("Sorry, I got distracted for a moment.", "No problem at all."),
    ("Do you like puzzles?", "I do! They're a fun challenge."),
    ("I woke up early today.", "An early start can make the day feel longer."),
    ("My phone died at lunch.", "That's never fun. I hope you found a charger."),
    ("I finally finished my to-do list.", "Great job! Time to relax."),
    ("The sunset was beautiful tonight.", "That sounds lovely."),
    ("I'm in a good mood today.", "That's great to hear!"),
    ("Mondays are always hard.", "They are. It gets easier as the week goes on."),
)
USER_PREFIXES = ("By the way, ", "Oh, and ", "Also, ", "Fun fact: ", "Just so you know, ")
_PREFIX_RATE = 0.2
_PREFIXABLE = ("I ", "I'", "My ", "Our ")

PRODUCT_TITLES = ("{s}", "{s}: product sheet", "About the {s}", "{s} fact sheet", "Meet the {s}")
PRODUCT_INTROS = (
    "This sheet covers the {s}.",
    "Here are the key details of the {s}.",
    "Please keep this sheet with your {s}.",
    "The {s} is one of our newest products.",
    "Everything you need to know about the {s} is below.",
)
PRODUCT_FILLERS = (
    "It is designed for everyday use.",
    "Many customers use it every day.",
    "Setup is quick and simple.",
    "Please read this sheet before first use.",
    "Keep it away from water and direct sunlight.",
    "Reviewers have praised its simple design.",
    "It fits easily on a desk or shelf.",
    "Clean it with a dry cloth only.",
    "Our support team is happy to help with any questions.",
    "Store the original box in case you need it later.",
)
PROCEDURE_TITLES = ("{s}", "{s}: a short guide", "How the {s} works", "Guide to the {s}", "{s} (staff notes)")
PROCEDURE_INTROS = (
    "This note explains the {s}.",
    "Please follow this guide for the {s}.",
    "Everyone should know how the {s} works.",
    "Here is what you need to know about the {s}.",
    "The rules for the {s} are summarized below.",
)
PROCEDURE_FILLERS = (
    "Read everything before you begin.",
    "Most people find it simple.",
    "This guide replaces all earlier versions.",
    "Take your time and do not skip anything.",
    "Questions are always welcome.",
    "Please keep this page somewhere handy.",
    "Mistakes happen, so stay calm if something goes wrong.",
    "Thank you for helping the process run smoothly.",
    "Write down anything unusual you notice.",
    "Colleagues who have done it before can show you around.",
)

# ----------------------------------------------------------------------------- rendering


def _article(value: str) -> str:
    """ "a" or "an" for a value, by how it is pronounced ("an iguana", "a USB cable", "an Audi A4")."""
    low = value.lower()
    if low.startswith(("hour", "honest", "heir")):
        return "an"
    if low.startswith(("uni", "use", "usu", "usb", "eu", "one ", "uk")):
        return "a"
    return "an" if low[:1] in "aeiou" else "a"


def _fill(template: str, subject: str, value: str) -> str:
    return template.format(s=subject, v=value, a=_article(value))


def _statement(rng: random.Random, attribute: Attribute, subject: str, value: str, heldout: bool) -> str:
    templates = attribute.heldout_statements if heldout else attribute.train_statements
    return _fill(rng.choice(templates), subject, value)


def _user_turn(rng: random.Random, attribute: Attribute, value: str, heldout: bool) -> str:
    """The user's line stating one fact, sometimes with a casual lead-in ("By the way, my sister ...")."""
    text = _statement(rng, attribute, "user", value, heldout)
    # only plain "I ..." / "My ..." sentences take a lead-in: "Oh, and my job? ..." reads badly, and a
    # sentence that opens with the value must keep it verbatim
    if rng.random() >= _PREFIX_RATE or "?" in text or ":" in text or not text.startswith(_PREFIXABLE):
        return text
    prefix = rng.choice(USER_PREFIXES)
    return prefix + (text if text.startswith(("I ", "I'")) else text[0].lower() + text[1:])


def _overlaps(a: str, b: str) -> bool:
    """True when one value is the other or a whole-word part of it ("Maria" and "Maria Lopez",
    "fantasy" and "fantasy epics"). Numbers may share digits with other values ("4" in "4417")."""
    short, long = (a.lower(), b.lower()) if len(a) <= len(b) else (b.lower(), a.lower())
    if short not in long:
        return False
    if short == long:
        return True
    if not any(c.isalpha() for c in short):
        return False
    return re.search(rf"(?<!\w){re.escape(short)}(?!\w)", long) is not None


def _draw_values(rng: random.Random, attributes: Sequence[Attribute]) -> list[str]:
    """One value per attribute, none equal to or a whole-word part of another, so that no question
    has two candidate answers in one text."""
    values: list[str] = []
    for attribute in attributes:
        for _ in range(100):
            value = attribute.draw(rng)
            if not any(_overlaps(value, other) for other in values):
                break
        else:  # pragma: no cover - every pool is far larger than the 16 facts of one text
            raise RuntimeError(f"could not draw a fresh value for {attribute.name!r}")
        values.append(value)
    return values


def _chat(
    rng: random.Random, attributes: Sequence[Attribute], values: Sequence[str], heldout: bool
) -> tuple[str, list[list[str]]]:
    """A transcript: each fact is one user turn with an acknowledgement; each fact is preceded by a
    small-talk exchange with probability 1/2 (a greeting when it opens the chat)."""
    turns: list[list[str]] = []
    for i, (attribute, value) in enumerate(zip(attributes, values, strict=True)):
        if rng.random() < 0.5:
            user, assistant = rng.choice(OPENERS if i == 0 else SMALL_TALK)
            turns += [["user", user], ["assistant", assistant]]
        turns += [["user", _user_turn(rng, attribute, value, heldout)], ["assistant", rng.choice(ACKNOWLEDGEMENTS)]]
    text = "\n".join(f"{'User' if role == 'user' else 'Assistant'}: {line}" for role, line in turns)
    return text, turns


def _document(
    rng: random.Random, genre: str, subject: str, attributes: Sequence[Attribute], values: Sequence[str], heldout: bool
) -> str:
    """A title line, then 1-3 short paragraphs: an intro, the fact sentences, and 1-2 filler sentences."""
    titles, intros, fillers = (
        (PRODUCT_TITLES, PRODUCT_INTROS, PRODUCT_FILLERS)
        if genre == "product"
        else (PROCEDURE_TITLES, PROCEDURE_INTROS, PROCEDURE_FILLERS)
    )
    body = [_statement(rng, a, subject, v, heldout) for a, v in zip(attributes, values, strict=True)]
    for filler in rng.sample(fillers, rng.randint(1, 2)):
        body.insert(rng.randint(0, len(body)), filler)
    sentences = [rng.choice(intros).format(s=subject), *body]
    n_paragraphs = rng.randint(1, min(3, max(1, len(sentences) // 3)))
    cuts = sorted(rng.sample(range(1, len(sentences)), n_paragraphs - 1))
    paragraphs = [" ".join(sentences[a:b]) for a, b in zip([0, *cuts], [*cuts, len(sentences)], strict=True)]
    return "\n\n".join([rng.choice(titles).format(s=subject), *paragraphs])


def _example(rng: random.Random, genre: str, n_facts: int, heldout: bool, example_id: str) -> QAExample:
    attributes = rng.sample(ATTRIBUTES_BY_GENRE[genre], n_facts)
    values = _draw_values(rng, attributes)
    if genre in CHAT_GENRES:
        subject = "user"
        context, turns = _chat(rng, attributes, values, heldout)
        meta: dict[str, object] = {"turns": turns}
    else:
        subject = _product_name(rng) if genre == "product" else _procedure_name(rng)
        context = _document(rng, genre, subject, attributes, values, heldout)
        meta = {}
    meta["subject"] = subject
    if heldout:
        meta["split"] = "heldout_phrasing"
    qa = tuple(
        QAPair(question=rng.choice(a.questions).format(s=subject), answer=v, key=f"{subject}/{a.name}")
        for a, v in zip(attributes, values, strict=True)
    )
    return QAExample(context=context, qa=qa, genre=genre, id=example_id, meta=meta)


# ----------------------------------------------------------------------------- public API


def max_facts(genre: str) -> int:
    """Most facts one text of ``genre`` can state: each attribute of the genre at most once."""
    if genre not in ATTRIBUTES_BY_GENRE:
        raise ValueError(f"unknown genre {genre!r}; expected one of {', '.join(GENRES)}")
    return len(ATTRIBUTES_BY_GENRE[genre])


def _fact_range(n_facts: int | tuple[int, int], genres: Sequence[str]) -> tuple[int, int]:
    if isinstance(n_facts, bool):
        raise ValueError(f"n_facts must be an int or an inclusive (lo, hi) pair of ints, got {n_facts!r}")
    if isinstance(n_facts, int):
        lo = hi = n_facts
    elif (
        isinstance(n_facts, tuple | list)
        and len(n_facts) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in n_facts)
    ):
        lo, hi = n_facts
    else:
        raise ValueError(f"n_facts must be an int or an inclusive (lo, hi) pair of ints, got {n_facts!r}")
    if lo > hi:
        raise ValueError(f"n_facts range is empty: lo={lo} > hi={hi}")
    if lo < 1:
        raise ValueError(f"every example states at least 1 fact, got n_facts={n_facts!r}")
    ceiling = min(max_facts(g) for g in genres)
    if hi > ceiling:
        limiting = min(genres, key=max_facts)
        raise ValueError(f"n_facts={n_facts!r} exceeds {ceiling}, the most facts a {limiting!r} text can state")
    return lo, hi


def generate_english(
    n: int,
    seed: int,
    *,
    n_facts: int | tuple[int, int] = (1, 8),
    genres: Sequence[str] | None = None,
    heldout_phrasing: bool = False,
) -> list[QAExample]:
    """``n`` examples of random English facts, deterministic for (n, seed, options).

    Genres are cycled in the given order (example ``i`` has genre ``genres[i % len(genres)]``), so
    every genre gets an even share however small ``n`` is. The number of facts of each example is
    drawn uniformly from the inclusive range ``n_facts`` (or fixed when it is an int). With
    ``heldout_phrasing=True`` every fact is stated with one of its attribute's held-out templates
    and the examples are marked ``meta["split"] = "heldout_phrasing"`` so that no trainer uses them.

    Every example's ``meta`` also holds its ``subject`` and, for chats, its ``turns``
    (``[role, text]`` pairs with roles ``"user"``/``"assistant"``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(genres, str):
        raise ValueError(f"genres must be a sequence of genre names, not the string {genres!r}")
    chosen = tuple(GENRES if genres is None else genres)
    if not chosen:
        raise ValueError("genres must name at least one genre")
    for g in chosen:
        max_facts(g)  # raises for an unknown genre
    lo, hi = _fact_range(n_facts, chosen)
    rng = random.Random(seed)
    return [
        _example(rng, chosen[i % len(chosen)], rng.randint(lo, hi), heldout_phrasing, f"en-{seed}-{i:06d}")
        for i in range(n)
    ]


class EnglishFacts:
    """The :class:`~agenthn_langgraph.data.facts.FactSource` of English: facts a user states about themselves.

    Draws from the profile and preference attributes together (a user mentions both in one
    conversation), so it offers up to :attr:`max_user_facts` facts with distinct keys ``user/<attribute>``.
    """

    max_user_facts: int = len(USER_ATTRIBUTES)
    acknowledgement: str = "Got it."  # the assistant's turn after a stated fact, where one is written

    def user_facts(self, rng: random.Random, n: int, *, heldout_phrasing: bool = False) -> list[Fact]:
        """``n`` facts with distinct keys, each a user turn stating a random value and a question asking for it."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.max_user_facts:
            raise ValueError(f"n must be an int in [0, {self.max_user_facts}] for English user facts, got {n!r}")
        attributes = rng.sample(USER_ATTRIBUTES, n)
        values = _draw_values(rng, attributes)
        return [
            Fact(
                key=f"user/{a.name}",
                statement=_user_turn(rng, a, v, heldout_phrasing),
                question=rng.choice(a.questions),
                answer=v,
            )
            for a, v in zip(attributes, values, strict=True)
        ]

    def small_talk(self, rng: random.Random) -> tuple[str, str]:
        """A (user, assistant) exchange that states nothing lasting about the user."""
        return rng.choice(SMALL_TALK)

    def statement_patterns(self) -> dict[str, list[re.Pattern[str]]]:
        """Regexes (value group ``v``) for every phrasing of every user fact, held-out ones included,
        with the casual lead-ins: what the rule-based profile extractor matches a sentence against.

        >>> rx = EnglishFacts().statement_patterns()["sister"]
        >>> next(m["v"] for r in rx if (m := r.match("By the way, my sister is called Maria Lopez.")))
        'Maria Lopez'
        """
        lead = "(?:" + "|".join(re.escape(p.strip()) for p in USER_PREFIXES) + r")?\s*"
        patterns: dict[str, list[re.Pattern[str]]] = {}
        for a in USER_ATTRIBUTES:
            for template in a.statements:
                rx = re.escape(template).replace(re.escape("{v}"), r"(?P<v>.+?)").replace(re.escape("{a}"), "(?:a|an)")
                patterns.setdefault(a.name, []).append(re.compile(rf"^{lead}{rx}$", re.IGNORECASE))
        return patterns

    @staticmethod
    def sentences(text: str) -> list[str]:
        """A message's sentences, case and punctuation kept ("Hi! My dog is Rex." -> two)."""
        return [part.strip() for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part.strip()]


class EnglishLanguage(EnglishFacts):
    """English as a :class:`~agenthn_langgraph.data.language.Language`: generated examples and user facts."""

    name = "english"
    genres = GENRES

    def examples(
        self,
        n: int,
        seed: int,
        *,
        n_facts: int | tuple[int, int] = (1, 8),
        genres: Sequence[str] | None = None,
        heldout_phrasing: bool = False,
    ) -> list[QAExample]:
        return generate_english(n, seed, n_facts=n_facts, genres=genres, heldout_phrasing=heldout_phrasing)

    def max_facts(self, genre: str) -> int:
        return max_facts(genre)
