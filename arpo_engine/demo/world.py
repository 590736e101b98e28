"""A seeded fictional world: towns, companies and people with integer attributes, and its search corpus.

Every name is an invented word, so no pretrained model knows a single fact about it: the only way to
an answer is to search the corpus. Each entity gets one short document (under the search tool's
300-character snippet) stating all its attributes. The sentence order and filler vary between
documents, but each attribute keeps one fixed phrase ("founded in 1841", "1841 employees") so a small
model can learn to read it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

KINDS = ("town", "company", "person")

# attribute -> (low, high) of its uniform integer range, per kind.
ATTRIBUTE_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "town": {
        "founded": (1150, 1990),
        "population": (900, 480000),
        "elevation": (3, 2900),
        "bridges": (1, 75),
    },
    "company": {"founded": (1805, 2018), "employees": (12, 60000), "offices": (1, 95)},
    "person": {"born": (1890, 2004), "height": (148, 208), "books": (1, 60)},
}

ATTRIBUTE_NOUNS: dict[str, str] = {
    "founded": "founding year",
    "population": "population",
    "elevation": "elevation",
    "bridges": "number of bridges",
    "employees": "number of employees",
    "offices": "number of offices",
    "born": "birth year",
    "height": "height",
    "books": "number of books",
}

# One fixed phrase per attribute; the thoughts in the SFT demos quote the same phrase.
FACT_PHRASES: dict[str, str] = {
    "founded": "{name} was founded in {v}.",
    "population": "{name} has a population of {v}.",
    "elevation": "{name} lies at {v} metres.",
    "bridges": "{name} has {v} bridges.",
    "employees": "{name} has {v} employees.",
    "offices": "{name} has {v} offices.",
    "born": "{name} was born in {v}.",
    "height": "{name} is {v} cm tall.",
    "books": "{name} has written {v} books.",
}

_ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gl",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
_CODAS = ("", "", "l", "n", "r", "m", "nd", "rk", "lt", "v")
_TOWN_ENDINGS = ("mora", "haven", "dale", "ford", "wick", "stead", "mere", "holt", "brook", "ton")
_COMPANY_KINDS = (
    ("Industries", "manufacturing", "machine parts"),
    ("Labs", "research", "measuring instruments"),
    ("Logistics", "shipping", "freight services"),
    ("Foundry", "metalworking", "cast iron goods"),
    ("Textiles", "textile", "woven cloth"),
    ("Mills", "milling", "flour and feed"),
)
_REGIONS = ("Ashen Vale", "Northmarch", "Coldwater Reach", "Emberfield", "Saltmarsh", "Greywold")
_TOWN_ADJECTIVES = ("quiet", "busy", "windy", "old", "hilly", "riverside")
_PROFESSIONS = ("painter", "engineer", "historian", "poet", "botanist", "cartographer", "composer")
_FIRST_NAMES = (
    "Ilsa",
    "Doran",
    "Mira",
    "Tobin",
    "Senna",
    "Orrin",
    "Liesl",
    "Caspar",
    "Vanya",
    "Ewan",
    "Talia",
    "Brann",
    "Noemi",
    "Aldo",
    "Runa",
    "Fenwick",
    "Idris",
    "Maelle",
    "Corin",
    "Oona",
)
# Words the documents themselves use: a coined name must never collide with one.
_RESERVED = frozenset({"the", "town", "company", "people", "bridges", "offices", "books", "metres"})


@dataclass(frozen=True)
class Entity:
    id: str
    kind: str
    name: str
    """Full name; its last word is a coined token found in no other document."""
    attributes: Mapping[str, int]
    details: Mapping[str, str]
    """Non-numeric flavour for the document (region, industry, profession …)."""

    def fact(self, attribute: str) -> str:
        return FACT_PHRASES[attribute].format(name=self.name, v=self.attributes[attribute])


@dataclass(frozen=True)
class World:
    entities: tuple[Entity, ...]
    train_ids: frozenset[str]
    eval_ids: frozenset[str]

    def split(self, name: str) -> tuple[Entity, ...]:
        ids = self.train_ids if name == "train" else self.eval_ids
        return tuple(e for e in self.entities if e.id in ids)


def build_world(rng: random.Random, n_entities: int, eval_fraction: float = 0.2) -> World:
    """Invent `n_entities` entities (kinds in turn) and split them, per kind, into train and eval."""
    if n_entities < 18:
        raise ValueError("n_entities must be at least 18 (each split needs a few entities of every kind)")
    seen: set[str] = set(_RESERVED) | {n.lower() for n in _FIRST_NAMES}
    entities = tuple(_make_entity(rng, i, KINDS[i % len(KINDS)], seen) for i in range(n_entities))
    eval_ids: set[str] = set()
    for kind in KINDS:
        ids = [e.id for e in entities if e.kind == kind]
        rng.shuffle(ids)
        eval_ids.update(ids[: max(3, round(len(ids) * eval_fraction))])
    train_ids = frozenset(e.id for e in entities) - eval_ids
    return World(entities=entities, train_ids=train_ids, eval_ids=frozenset(eval_ids))


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _coin(rng: random.Random, kind: str, seen: set[str]) -> str:
    """A new word, unique case-insensitively, so a BM25 query for a name matches one document only."""
    while True:
        if kind == "town":
            word = (_syllable(rng) + rng.choice(_TOWN_ENDINGS)).capitalize()
        else:
            word = (_syllable(rng) + _syllable(rng)).capitalize()
        if 5 <= len(word) <= 11 and word.lower() not in seen:
            seen.add(word.lower())
            return word


def _make_entity(rng: random.Random, index: int, kind: str, seen: set[str]) -> Entity:
    word = _coin(rng, kind, seen)
    attributes = {a: rng.randint(lo, hi) for a, (lo, hi) in ATTRIBUTE_RANGES[kind].items()}
    if kind == "town":
        name = word
        details = {"region": rng.choice(_REGIONS), "adjective": rng.choice(_TOWN_ADJECTIVES)}
    elif kind == "company":
        suffix, industry, product = rng.choice(_COMPANY_KINDS)
        name = f"{word} {suffix}"
        details = {"industry": industry, "product": product}
    else:
        name = f"{rng.choice(_FIRST_NAMES)} {word}"
        details = {"profession": rng.choice(_PROFESSIONS)}
    return Entity(id=f"e{index:05d}", kind=kind, name=name, attributes=attributes, details=details)


# --- documents -----------------------------------------------------------------------------------


def _town_doc(e: Entity, variant: int, neighbour: str) -> str:
    a, d, n = e.attributes, e.details, e.name
    return (
        f"{n} is a {d['adjective']} town in {d['region']}, near {neighbour}. It was founded in "
        f"{a['founded']} and has a population of {a['population']}. The town lies at {a['elevation']} "
        f"metres and has {a['bridges']} bridges.",
        f"Founded in {a['founded']}, {n} lies at {a['elevation']} metres in {d['region']}. With a "
        f"population of {a['population']}, the {d['adjective']} town near {neighbour} is known for its "
        f"{a['bridges']} bridges.",
        f"In {d['region']}, the town of {n} has {a['bridges']} bridges and a population of "
        f"{a['population']}. It lies at {a['elevation']} metres, a day's walk from {neighbour}, and was "
        f"founded in {a['founded']}.",
    )[variant]


def _company_doc(e: Entity, variant: int, neighbour: str) -> str:
    a, d, n = e.attributes, e.details, e.name
    return (
        f"{n} is {_article(d['industry'])} {d['industry']} company from {neighbour}, founded in {a['founded']}. It has "
        f"{a['employees']} employees in {a['offices']} offices.",
        f"Founded in {a['founded']}, {n} makes {d['product']}. The company has {a['offices']} offices "
        f"and {a['employees']} employees.",
        f"{n} ({d['industry']}) has {a['employees']} employees. It was founded in {a['founded']} in "
        f"{neighbour} and today runs {a['offices']} offices.",
    )[variant]


def _person_doc(e: Entity, variant: int, neighbour: str) -> str:
    a, d, n = e.attributes, e.details, e.name
    return (
        f"{n} is {_article(d['profession'])} {d['profession']}, born in {a['born']} in {neighbour}. "
        f"{n} is {a['height']} cm tall and has written {a['books']} books.",
        f"The {d['profession']} {n} has written {a['books']} books. Born in {a['born']}, {n} is {a['height']} cm tall.",
        f"{n} ({d['profession']}, of {neighbour}) is {a['height']} cm tall, was born in {a['born']} and "
        f"has written {a['books']} books.",
    )[variant]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


_DOCUMENTS: dict[str, Callable[[Entity, int, str], str]] = {
    "town": _town_doc,
    "company": _company_doc,
    "person": _person_doc,
}


def corpus_rows(world: World, rng: random.Random) -> list[dict[str, str]]:
    """One search document per entity: {"id", "title", "text"}.

    Every document also names some other town, so a search for a town returns the documents that
    mention it too: the agent has to read which snippet is about the entity it asked for.
    """
    towns = [e.name for e in world.entities if e.kind == "town"]
    rows = []
    for e in world.entities:
        neighbour = rng.choice([t for t in towns if t != e.name])
        rows.append({"id": e.id, "title": e.name, "text": _DOCUMENTS[e.kind](e, rng.randrange(3), neighbour)})
    return rows
