"""Question templates for the demo task: look facts up with search, then do the arithmetic in Python.

A template names the facts it needs (entity slot, attribute), an integer expression over them, and
several phrasings. Difficulty is the number of hops: 1 = one entity plus arithmetic with a constant,
2 = two entities (two searches, then Python). Answers are positive integers; a draw that gives zero or
less is redrawn, which is also how "how many years after A was B founded" keeps B after A.
"""

from __future__ import annotations

import ast
import operator
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from arpo_engine.demo.world import Entity

Slot = tuple[int, str]
"""(entity slot 0 or 1, attribute)."""


@dataclass(frozen=True)
class Template:
    id: str
    facts: tuple[Slot, ...]
    """The facts the question needs, in the order the expression refers to them ({0}, {1} …)."""
    expression: str
    """Integer expression over the facts and the constant {k}; it is also the Python the demos run."""
    phrasings: tuple[str, ...]
    """Question texts with {a}, {b} (entity names) and {k}."""
    constant: tuple[int, int] | None = None
    """Range of the constant {k}, when the question has one."""

    @property
    def hops(self) -> int:
        return len({slot for slot, _ in self.facts})


TEMPLATES: tuple[Template, ...] = (
    # --- 1 hop: one entity, one search, then arithmetic with a constant ---
    Template(
        "population_times",
        ((0, "population"),),
        "{0} * {k}",
        (
            "What is the population of {a} times {k}?",
            "Multiply the population of {a} by {k}. What do you get?",
            "If {a} had {k} times as many inhabitants as it has now, how many would it have?",
        ),
        (2, 9),
    ),
    Template(
        "years_since_founding",
        ((0, "founded"),),
        "{k} - {0}",
        (
            "How many years after the founding of {a} is the year {k}?",
            "In the year {k}, how many years will have passed since {a} was founded?",
            "How many years old will {a} be in {k}?",
            "How many years lie between the founding of {a} and the year {k}?",
        ),
        (2030, 2100),
    ),
    Template(
        "people_per_bridge",
        ((0, "population"), (0, "bridges")),
        "{0} // {1}",
        (
            "How many inhabitants of {a} are there per bridge, rounded down to a whole number?",
            "Divide the population of {a} by its number of bridges. What is the whole-number part?",
        ),
    ),
    Template(
        "elevation_raised",
        ((0, "elevation"),),
        "{0} + {k}",
        (
            "If {a} lay {k} metres higher, at how many metres would it lie?",
            "What is the elevation of {a} in metres plus {k}?",
        ),
        (10, 900),
    ),
    Template(
        "population_remainder",
        ((0, "population"),),
        "{0} % {k}",
        (
            "What is the remainder when the population of {a} is divided by {k}?",
            "What is the population of {a} modulo {k}?",
        ),
        (7, 97),
    ),
    Template(
        "staff_per_office",
        ((0, "employees"), (0, "offices")),
        "{0} // {1}",
        (
            "On average, how many employees does {a} have per office, rounded down?",
            "Divide the number of employees of {a} by its number of offices. What is the whole-number part?",
        ),
    ),
    Template(
        "staff_after_hiring",
        ((0, "employees"),),
        "{0} + {k}",
        (
            "If {a} hired {k} more people, how many employees would it have?",
            "{a} plans to add {k} employees. How many employees will it have then?",
        ),
        (15, 5000),
    ),
    Template(
        "age_in_year",
        ((0, "born"),),
        "{k} - {0}",
        (
            "How old will {a} be in the year {k}?",
            "How many years after the birth of {a} is the year {k}?",
        ),
        (2030, 2100),
    ),
    Template(
        "height_in_mm",
        ((0, "height"),),
        "{0} * {k}",
        (
            "What is the height of {a} in millimetres?",
            "How many millimetres tall is {a}?",
        ),
        (10, 10),
    ),
    Template(
        "pages_written",
        ((0, "books"),),
        "{0} * {k}",
        (
            "If each of the books by {a} has {k} pages, how many pages has {a} written in total?",
            "{a}'s books have {k} pages each. How many pages is that altogether?",
        ),
        (120, 480),
    ),
    # --- 2 hops: two entities, two searches, then arithmetic ---
    Template(
        "founding_gap",
        ((0, "founded"), (1, "founded")),
        "{1} - {0}",
        (
            "How many years after {a} was founded was {b} founded?",
            "{a} and {b}: how many years passed between their foundings, counting from {a}?",
            "How many years older is {a} than {b}, counting from their founding years?",
        ),
    ),
    Template(
        "combined_population",
        ((0, "population"), (1, "population")),
        "{0} + {1}",
        (
            "What is the combined population of {a} and {b}?",
            "How many people live in {a} and {b} together?",
        ),
    ),
    Template(
        "population_difference",
        ((0, "population"), (1, "population")),
        "{0} - {1}",
        (
            "How many more inhabitants does {a} have than {b}?",
            "By how much does the population of {a} exceed that of {b}?",
        ),
    ),
    Template(
        "elevation_difference",
        ((0, "elevation"), (1, "elevation")),
        "{0} - {1}",
        (
            "How many metres higher does {a} lie than {b}?",
            "What is the difference in elevation between {a} and the lower-lying {b}, in metres?",
        ),
    ),
    Template(
        "combined_staff",
        ((0, "employees"), (1, "employees")),
        "{0} + {1}",
        (
            "How many people do {a} and {b} employ together?",
            "What is the total number of employees of {a} and {b}?",
        ),
    ),
    Template(
        "height_difference",
        ((0, "height"), (1, "height")),
        "{0} - {1}",
        (
            "How many centimetres taller is {a} than {b}?",
            "By how many cm does the height of {a} exceed that of {b}?",
        ),
    ),
    Template(
        "birth_gap",
        ((0, "born"), (1, "born")),
        "{1} - {0}",
        (
            "How many years older is {a} than {b}?",
            "How many years before {b} was {a} born?",
        ),
    ),
    Template(
        "age_at_founding",
        ((0, "born"), (1, "founded")),
        "{1} - {0}",
        (
            "How old was {a} when {b} was founded?",
            "{b} was founded some years after {a} was born. How many years?",
        ),
    ),
    Template(
        "combined_books",
        ((0, "books"), (1, "books")),
        "{0} + {1}",
        (
            "How many books have {a} and {b} written together?",
            "What is the total number of books written by {a} and {b}?",
        ),
    ),
)


@dataclass(frozen=True)
class Fact:
    entity: str
    """The entity's name, which is also the search query for it."""
    attribute: str
    value: int


@dataclass(frozen=True)
class Question:
    text: str
    answer: int
    template: str
    hops: int
    entities: tuple[Entity, ...]
    facts: tuple[Fact, ...]
    constant: int | None
    code: str
    """The Python that computes the answer from the facts, e.g. `print(1873 - 1841)`."""

    def row(self, data_source: str) -> dict[str, object]:
        """The dataset row (flat JSONL form of arpo_engine.data)."""
        return {
            "question": self.text,
            "answer": str(self.answer),
            "data_source": data_source,
            "template": self.template,
            "hops": self.hops,
            "entities": [e.name for e in self.entities],
            "facts": [[f.entity, f.attribute, f.value] for f in self.facts],
            "constant": self.constant,
            "code": self.code,
        }


def draw_questions(
    rng: random.Random,
    entities: Sequence[Entity],
    count: int,
    hops: Sequence[int],
    *,
    exclude: Collection[str] = (),
) -> list[Question]:
    """`count` distinct questions over `entities` (none whose text is in `exclude`), hops drawn evenly."""
    by_hops = {h: [t for t in TEMPLATES if t.hops == h] for h in sorted(set(hops))}
    if not all(by_hops.values()) or not by_hops:
        raise ValueError(f"hops must be among 1 and 2, got {list(hops)}")
    questions: dict[str, Question] = {}
    budget = 50 * count + 1000
    while len(questions) < count:
        # Hops first, kept until a question is found: each difficulty gets an equal share, whatever
        # its template count or how often its draws are rejected.
        templates = by_hops[rng.choice(list(by_hops))]
        question = None
        while question is None or question.text in exclude or question.text in questions:
            budget -= 1
            if budget < 0:
                raise ValueError(f"only {len(questions)} distinct questions for {count} asked: add entities")
            question = _draw(rng, rng.choice(templates), entities)
        questions[question.text] = question
    return list(questions.values())


def _draw(rng: random.Random, template: Template, entities: Sequence[Entity]) -> Question | None:
    slots: list[Entity] = []
    for slot in range(template.hops):
        needed = {attr for s, attr in template.facts if s == slot}
        pool = [e for e in entities if needed <= e.attributes.keys() and e not in slots]
        if not pool:
            return None
        slots.append(rng.choice(pool))
    values = [slots[s].attributes[attr] for s, attr in template.facts]
    k = rng.randint(*template.constant) if template.constant else None
    expression = template.expression.format(*values, k=k)
    answer = evaluate(expression)
    if answer <= 0:
        return None
    names = {"a": slots[0].name, "b": slots[1].name if len(slots) > 1 else ""}
    text = rng.choice(template.phrasings).format(**names, k=k)
    facts = tuple(Fact(slots[s].name, attr, v) for (s, attr), v in zip(template.facts, values, strict=True))
    return Question(text, answer, template.id, template.hops, tuple(slots), facts, k, f"print({expression})")


_OPERATORS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def evaluate(expression: str) -> int:
    """Value of an integer expression with + - * // % (the templates' only operators)."""
    return _eval_node(ast.parse(expression, mode="eval").body)


def _eval_node(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_eval_node(node.left), _eval_node(node.right))
    raise ValueError(f"unsupported expression: {ast.unparse(node)}")
