"""Task families of the reasoning-trace generator (``tunix_rt.datagen``).

A family turns a seeded ``random.Random`` and a difficulty into one ``Problem``: a short prompt, an
answer computed here in Python, and steps that show the real intermediate work (column sums with
carries, partial products, each sub-result of a word problem, the formula with the numbers put
in). Nothing is looked up or hand-written, so every answer is correct by construction.

A tiny model is trained on these on CPU, so the text stays short and regular: prompts of at most
about 120 characters, answers a number or a few words, and the same phrasing for every row of a
family. Families draw from the ``rng`` they are given and nothing else, which is what makes the
shipped files reproducible byte for byte.

The generator reads only ``Family``, ``Problem``, ``FAMILIES``, ``CATEGORIES`` and
``DIFFICULTIES`` from this module, so a catalog with the same shapes can replace it whole.
"""

# The multiplication and division signs are deliberate: the original tunix-rt's data and its eval
# sets write arithmetic with them, so the model should see the same symbols.
# ruff: noqa: RUF001

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Category = Literal["arithmetic", "word_problem", "string", "counting", "unit_conversion"]
Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
CATEGORIES: tuple[Category, ...] = (
    "arithmetic",
    "word_problem",
    "string",
    "counting",
    "unit_conversion",
)


Steps = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Problem:
    """One generated task; ``steps`` holds ``(step type, content)`` pairs in order."""

    prompt: str
    answer: str
    steps: Steps


Builder = Callable[[random.Random, Difficulty], Problem]


@dataclass(frozen=True)
class Family:
    """A task type, the category it is counted under, and the function that builds it."""

    task_type: str
    category: Category
    build: Builder


_REGISTRY: list[Family] = []


def _family(task_type: str, category: Category) -> Callable[[Builder], Builder]:
    def register(build: Builder) -> Builder:
        _REGISTRY.append(Family(task_type, category, build))
        return build

    return register


PLACES = ("Ones", "Tens", "Hundreds", "Thousands", "Ten-thousands")
NAMES = ("Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena")
# Every item takes a plain "s" plural, so prompts never need an irregular form.
ITEMS = ("pen", "book", "apple", "cup", "card", "ball", "sticker", "marble", "plate", "shell")
ANIMALS = ("cat", "dog", "owl", "fox", "bee", "hen", "cow", "pig", "ant", "elk", "yak", "emu")
VOWELS = "aeiou"
CONSONANTS = "".join(c for c in string.ascii_lowercase if c not in VOWELS)


def fmt(x: Decimal | int) -> str:
    """Plain decimal text: no exponent, no trailing zeros ("2500", "3.45", "-72")."""
    if isinstance(x, int):
        return str(x)
    text = format(x, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _digits(n: int, width: int) -> list[int]:
    """Digits of ``n``, ones first, padded with zeros to ``width`` columns."""
    return [(n // 10**p) % 10 for p in range(width)]


def _spaced(items: Iterable[object]) -> str:
    return " ".join(str(x) for x in items)


def _listed(items: list[int] | list[str]) -> str:
    return ", ".join(str(x) for x in items) if items else "none"


# --- arithmetic: the written methods taught in school, one column or partial per step ---------


@_family("addition", "arithmetic")
def addition(rng: random.Random, d: Difficulty) -> Problem:
    width = {"easy": 2, "medium": 3, "hard": 4}[d]
    a, b = _number(rng, width), _number(rng, width)
    steps = [("setup", "Add column by column from the ones, carrying any ten.")]
    carry = 0
    for place, (da, db) in enumerate(zip(_digits(a, width), _digits(b, width), strict=True)):
        total = da + db + carry
        expr = f"{da} + {db}" + (f" + {carry} carried" if carry else "")
        write = f"write {total % 10}, carry 1" if total >= 10 else f"write {total}"
        steps.append(("calc", f"{PLACES[place]}: {expr} = {total}, {write}"))
        carry = total // 10
    if carry:
        steps.append(("calc", f"{PLACES[width]}: write the carried 1"))
    steps.append(("result", f"{a} + {b} = {a + b}"))
    return Problem(f"What is {a} + {b}?", str(a + b), tuple(steps))


@_family("subtraction", "arithmetic")
def subtraction(rng: random.Random, d: Difficulty) -> Problem:
    width = {"easy": 2, "medium": 3, "hard": 4}[d]
    a = rng.randint(10 ** (width - 1) + 1, 10**width - 1)
    b = rng.randint(10 ** (width - 2) if width > 2 else 1, a - 1)
    steps = [("setup", "Subtract column by column from the ones, borrowing when needed.")]
    borrow = 0
    for place, (da, db) in enumerate(zip(_digits(a, width), _digits(b, width), strict=True)):
        top = da - borrow
        lent = f"{da} - 1 lent = {top}; " if borrow else ""
        if top >= db:
            work, borrow = f"{top} - {db} = {top - db}", 0
        else:
            work, borrow = f"{top} < {db}, borrow 10: {top + 10} - {db} = {top + 10 - db}", 1
        steps.append(("calc", f"{PLACES[place]}: {lent}{work}"))
    steps.append(("result", f"{a} - {b} = {a - b}"))
    return Problem(f"What is {a} - {b}?", str(a - b), tuple(steps))


@_family("multiplication", "arithmetic")
def multiplication(rng: random.Random, d: Difficulty) -> Problem:
    a_width, b_width = {"easy": (1, 2), "medium": (2, 2), "hard": (3, 3)}[d]
    a = rng.randint(2, 9) if a_width == 1 else _number(rng, a_width)
    # Nonzero digits in b so every place gives a partial product worth showing.
    b_digits = [rng.randint(1, 9) for _ in range(b_width)]
    b = int("".join(map(str, b_digits)))
    parts = [digit * 10 ** (b_width - 1 - k) for k, digit in enumerate(b_digits)]
    steps = [("setup", f"Split {b} = {' + '.join(map(str, parts))}")]
    for digit, part in zip(b_digits, parts, strict=True):
        if part == digit:
            steps.append(("calc", f"{a} × {part} = {a * part}"))
        else:
            steps.append(("calc", f"{a} × {digit} = {a * digit}, so {a} × {part} = {a * part}"))
    partials = " + ".join(str(a * part) for part in parts)
    steps.append(("result", f"Add: {partials} = {a * b}"))
    return Problem(f"What is {a} × {b}?", str(a * b), tuple(steps))


@_family("division", "arithmetic")
def division(rng: random.Random, d: Difficulty) -> Problem:
    (d_lo, d_hi), (q_lo, q_hi) = {
        "easy": ((2, 9), (11, 99)),
        "medium": ((2, 9), (100, 999)),
        "hard": ((11, 25), (21, 99)),
    }[d]
    divisor, quotient = rng.randint(d_lo, d_hi), rng.randint(q_lo, q_hi)
    dividend = divisor * quotient  # exact by construction: the answer is a whole number
    text = str(dividend)
    take = 1
    while int(text[:take]) < divisor:
        take += 1
    current = int(text[:take])
    steps: list[tuple[str, str]] = []
    for k, ch in enumerate(text[take - 1 :]):
        if k:
            current = current * 10 + int(ch)
        q, r = divmod(current, divisor)
        head = f"Take {current}" if k == 0 else f"Bring down {ch}: {current}"
        steps.append(("calc", f"{head} ÷ {divisor} = {q}, remainder {r}"))
        current = r
    steps.append(("check", f"Quotient {quotient}; check: {quotient} × {divisor} = {dividend}"))
    return Problem(f"What is {dividend} ÷ {divisor}?", str(quotient), tuple(steps))


# --- word problems: every sub-result gets its own step ---------------------------------------


@_family("shopping", "word_problem")
def shopping(rng: random.Random, d: Difficulty) -> Problem:
    name = rng.choice(NAMES)
    q1, p1, item1 = rng.randint(2, 9), rng.randint(2, 15), rng.choice(ITEMS)
    cost1 = q1 * p1
    if d == "easy":
        prompt = f"{name} buys {q1} {item1}s at ${p1} each. What is the total cost?"
        steps = [("rule", "Total cost = number × price"), ("calc", f"{q1} × ${p1} = ${cost1}")]
        return Problem(prompt, f"${cost1}", tuple(steps))
    steps = [("calc", f"Cost of {item1}s: {q1} × ${p1} = ${cost1}")]
    total = cost1
    if d == "medium":
        bought = f"{q1} {item1}s at ${p1} each"
    else:
        q2, p2 = rng.randint(2, 9), rng.randint(2, 15)
        item2 = rng.choice([i for i in ITEMS if i != item1])
        total = cost1 + q2 * p2
        bought = f"{q1} {item1}s at ${p1} and {q2} {item2}s at ${p2}"
        steps.append(("calc", f"Cost of {item2}s: {q2} × ${p2} = ${q2 * p2}"))
        steps.append(("calc", f"Total cost: ${cost1} + ${q2 * p2} = ${total}"))
    paid = next(note for note in (10, 20, 50, 100, 200, 500) if note > total)
    steps.append(("calc", f"Change: ${paid} - ${total} = ${paid - total}"))
    prompt = f"{name} buys {bought}, paying with ${paid}. How much change?"
    return Problem(prompt, f"${paid - total}", tuple(steps))


@_family("travel", "word_problem")
def travel(rng: random.Random, d: Difficulty) -> Problem:
    vehicle, (v_lo, v_hi) = rng.choice((("car", (40, 90)), ("bus", (30, 70)), ("bike", (10, 25))))
    v, t = rng.randint(v_lo, v_hi), rng.randint(2, 6)
    if d == "easy":
        prompt = f"A {vehicle} goes {v} km/h for {t} hours. How far does it go?"
        steps = [("rule", "Distance = speed × time"), ("calc", f"{v} × {t} = {v * t}")]
        return Problem(prompt, f"{v * t} km", tuple(steps))
    if d == "medium":
        prompt = f"A {vehicle} goes {v * t} km at {v} km/h. How many hours does it take?"
        steps = [("rule", "Time = distance ÷ speed"), ("calc", f"{v * t} ÷ {v} = {t}")]
        return Problem(prompt, f"{t} hours", tuple(steps))
    v2, t2 = rng.randint(v_lo, v_hi), rng.randint(2, 6)
    prompt = (
        f"A {vehicle} goes {v} km/h for {t} hours, then {v2} km/h for {t2} hours. "
        "How far does it go in total?"
    )
    steps = [
        ("rule", "Distance = speed × time, for each part"),
        ("calc", f"First part: {v} × {t} = {v * t}"),
        ("calc", f"Second part: {v2} × {t2} = {v2 * t2}"),
        ("calc", f"Total: {v * t} + {v2 * t2} = {v * t + v2 * t2}"),
    ]
    return Problem(prompt, f"{v * t + v2 * t2} km", tuple(steps))


@_family("sharing", "word_problem")
def sharing(rng: random.Random, d: Difficulty) -> Problem:
    name, item, k = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(2, 9)
    if d == "easy":
        share = rng.randint(2, 15)
        prompt = f"{k * share} {item}s are shared equally by {k} kids. How many does each get?"
        steps = [("rule", "Each share = total ÷ people"), ("calc", f"{k * share} ÷ {k} = {share}")]
        return Problem(prompt, str(share), tuple(steps))
    while True:  # draw until the amount to share splits evenly among k (always ends quickly)
        bags, per_bag = rng.randint(2, 9), rng.randint(3, 12)
        kept = 0 if d == "medium" else rng.randint(1, 9)
        rest = bags * per_bag - kept
        if rest > k and rest % k == 0:
            break
    steps = [("calc", f"Total: {bags} × {per_bag} = {bags * per_bag}")]
    if d == "medium":
        how = " and shares them"
    else:
        how = f", keeps {kept}, and shares the rest"
        steps.append(("calc", f"Left to share: {bags * per_bag} - {kept} = {rest}"))
    steps.append(("calc", f"Each gets: {rest} ÷ {k} = {rest // k}"))
    prompt = (
        f"{name} has {bags} bags of {per_bag} {item}s{how} equally among {k} friends. "
        "How many does each get?"
    )
    return Problem(prompt, str(rest // k), tuple(steps))


@_family("inventory", "word_problem")
def inventory(rng: random.Random, d: Difficulty) -> Problem:
    name, item, start = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(5, 40)
    if d == "easy":
        more = rng.randint(2, 20)
        gone = rng.randint(1, start + more - 1)
        prompt = f"{name} has {start} {item}s, gets {more} more, then gives away {gone}."
        steps = [
            ("calc", f"After getting: {start} + {more} = {start + more}"),
            ("calc", f"After giving: {start + more} - {gone} = {start + more - gone}"),
        ]
        return Problem(prompt + " How many are left?", str(start + more - gone), tuple(steps))
    packs, per_pack = rng.randint(2, 6), rng.randint(3, 12)
    have = start + packs * per_pack
    steps = [
        ("calc", f"Bought: {packs} × {per_pack} = {packs * per_pack}"),
        ("calc", f"Now has: {start} + {packs * per_pack} = {have}"),
    ]
    if d == "medium":
        gone = rng.randint(1, have - 1)
        given = f"gives away {gone}"
    else:
        friends = rng.randint(2, 5)
        each = rng.randint(1, have // friends)
        gone, given = each * friends, f"gives {each} to each of {friends} friends"
        steps.append(("calc", f"Given away: {each} × {friends} = {gone}"))
    steps.append(("calc", f"Left: {have} - {gone} = {have - gone}"))
    prompt = f"{name} has {start} {item}s, buys {packs} packs of {per_pack}, then {given}."
    return Problem(prompt + " How many are left?", str(have - gone), tuple(steps))


# --- strings: random letters, so the model must do the work rather than recall a word ---------


def _length(rng: random.Random, d: Difficulty) -> int:
    lo, hi = {"easy": (4, 5), "medium": (6, 7), "hard": (8, 10)}[d]
    return rng.randint(lo, hi)


def _letters(rng: random.Random, d: Difficulty, vowel_share: float = 5 / 26) -> str:
    return "".join(
        rng.choice(VOWELS) if rng.random() < vowel_share else rng.choice(CONSONANTS)
        for _ in range(_length(rng, d))
    )


@_family("string_reverse", "string")
def string_reverse(rng: random.Random, d: Difficulty) -> Problem:
    s = _letters(rng, d)
    steps = (
        ("setup", f"Letters: {_spaced(s)}"),
        ("calc", f"Last to first: {_spaced(reversed(s))}"),
        ("result", f"Joined: {s[::-1]}"),
    )
    return Problem(f"Reverse the string: {s}", s[::-1], steps)


@_family("string_sort", "string")
def string_sort(rng: random.Random, d: Difficulty) -> Problem:
    s = _letters(rng, d)
    ordered = "".join(sorted(s))
    steps = (
        ("setup", f"Letters: {_spaced(s)}"),
        ("calc", "Alphabet positions: " + " ".join(f"{c}={ord(c) - 96}" for c in s)),
        ("calc", f"By position: {_spaced(ordered)}"),
        ("result", f"Joined: {ordered}"),
    )
    return Problem(f"Sort the letters of {s} alphabetically.", ordered, steps)


@_family("count_vowels", "string")
def count_vowels(rng: random.Random, d: Difficulty) -> Problem:
    s = _letters(rng, d, vowel_share=0.3)  # more vowels than chance, so counts vary
    found = [c for c in s if c in VOWELS]
    steps = (
        ("rule", "Vowels are a, e, i, o, u"),
        ("setup", f"Letters: {_spaced(s)}"),
        ("calc", f"Vowels found: {_listed(found)}"),
        ("result", f"Count: {len(found)}"),
    )
    return Problem(f"How many vowels are in {s}?", str(len(found)), steps)


@_family("count_letter", "string")
def count_letter(rng: random.Random, d: Difficulty) -> Problem:
    target = rng.choice(string.ascii_lowercase)
    others = [c for c in string.ascii_lowercase if c != target]
    chars = [rng.choice(others) for _ in range(_length(rng, d))]
    lo, hi = {"easy": (1, 2), "medium": (0, 3), "hard": (1, 4)}[d]
    for _ in range(rng.randint(lo, hi)):
        chars[rng.randrange(len(chars))] = target  # may land twice on one spot: count is honest
    s = "".join(chars)
    where = [p + 1 for p, c in enumerate(s) if c == target]
    steps = (
        ("setup", f"Letters: {_spaced(s)}"),
        ("calc", f"Positions of {target}: {_listed(where)}"),
        ("result", f"Count: {len(where)}"),
    )
    return Problem(f"How many times does '{target}' appear in {s}?", str(len(where)), steps)


# --- counting: scan a short list, name what matches, then count --------------------------------


@_family("count_words", "counting")
def count_words(rng: random.Random, d: Difficulty) -> Problem:
    length, kinds = {"easy": (5, 3), "medium": (7, 4), "hard": (9, 5)}[d]
    pool = list(ANIMALS)
    rng.shuffle(pool)
    del pool[kinds:]
    words = [rng.choice(pool) for _ in range(length)]
    target = rng.choice(pool)
    where = [p + 1 for p, w in enumerate(words) if w == target]
    steps = (
        ("setup", "Numbered: " + ", ".join(f"{p + 1} {w}" for p, w in enumerate(words))),
        ("calc", f"Positions of {target}: {_listed(where)}"),
        ("result", f"Count: {len(where)}"),
    )
    prompt = f"How many times does '{target}' appear in: {' '.join(words)}?"
    return Problem(prompt, str(len(where)), steps)


def _numbers(rng: random.Random, d: Difficulty) -> list[int]:
    length, top = {"easy": (5, 20), "medium": (7, 99), "hard": (9, 999)}[d]
    return [rng.randint(1, top) for _ in range(length)]


@_family("count_even", "counting")
def count_even(rng: random.Random, d: Difficulty) -> Problem:
    numbers = _numbers(rng, d)
    even = [n for n in numbers if n % 2 == 0]
    steps = (
        ("rule", "A number is even if its last digit is 0, 2, 4, 6 or 8"),
        ("calc", f"Even: {_listed(even)}"),
        ("result", f"Count: {len(even)}"),
    )
    prompt = f"How many even numbers are in: {', '.join(map(str, numbers))}?"
    return Problem(prompt, str(len(even)), steps)


@_family("count_greater", "counting")
def count_greater(rng: random.Random, d: Difficulty) -> Problem:
    numbers = _numbers(rng, d)
    limit = rng.choice(numbers)  # taken from the list, so the "equal is not greater" case shows up
    marks = ", ".join(f"{n} {'yes' if n > limit else 'no'}" for n in numbers)
    count = sum(n > limit for n in numbers)
    steps = (("calc", f"Compare with {limit}: {marks}"), ("result", f"Count: {count}"))
    prompt = f"How many numbers are greater than {limit} in: {', '.join(map(str, numbers))}?"
    return Problem(prompt, str(count), steps)


@_family("count_multiples", "counting")
def count_multiples(rng: random.Random, d: Difficulty) -> Problem:
    (k_lo, k_hi), (lo_lo, lo_hi), (span_lo, span_hi) = {
        "easy": ((2, 5), (1, 20), (10, 30)),
        "medium": ((3, 9), (1, 50), (20, 60)),
        "hard": ((6, 19), (100, 500), (100, 900)),
    }[d]
    k, lo = rng.randint(k_lo, k_hi), rng.randint(lo_lo, lo_hi)
    hi = lo + rng.randint(span_lo, span_hi)
    count = hi // k - (lo - 1) // k
    prompt = f"How many multiples of {k} are there from {lo} to {hi}?"
    if d == "hard":  # too many to list: count multiples up to each end and subtract
        steps = (
            ("calc", f"Multiples up to {hi}: {hi} ÷ {k} = {hi // k} (whole part)"),
            ("calc", f"Multiples up to {lo - 1}: {lo - 1} ÷ {k} = {(lo - 1) // k} (whole part)"),
            ("result", f"Count: {hi // k} - {(lo - 1) // k} = {count}"),
        )
        return Problem(prompt, str(count), steps)
    first = -(-lo // k) * k
    listed = list(range(first, hi + 1, k))
    steps = (
        ("calc", f"First multiple from {lo}: {first}"),
        ("calc", f"List: {_listed(listed)}"),
        ("result", f"Count: {count}"),
    )
    return Problem(prompt, str(count), steps)


# --- unit conversions: the unit fact, the formula, then the numbers put in ---------------------


def _scaled(rng: random.Random, d: Difficulty, units: tuple[tuple[str, str, int], ...]) -> Problem:
    big, small, factor = rng.choice(units)
    if d == "hard":  # small to big: divide, giving a decimal
        n = rng.randint(11, 99 * factor)
        value = Decimal(n) / factor
        steps = (
            ("rule", f"1 {big} = {factor} {small}, so divide by {factor}"),
            ("calc", f"{n} ÷ {factor} = {fmt(value)}"),
        )
        return Problem(f"Convert {n} {small} to {big}.", f"{fmt(value)} {big}", steps)
    if d == "easy":
        given = Decimal(rng.randint(1, 99))
    else:  # one decimal place, never a whole number
        given = Decimal(rng.choice([n for n in range(11, 1000) if n % 10])) / 10
    value = given * factor
    steps = (
        ("rule", f"1 {big} = {factor} {small}, so multiply by {factor}"),
        ("calc", f"{fmt(given)} × {factor} = {fmt(value)}"),
    )
    return Problem(f"Convert {fmt(given)} {big} to {small}.", f"{fmt(value)} {small}", steps)


@_family("convert_length", "unit_conversion")
def convert_length(rng: random.Random, d: Difficulty) -> Problem:
    return _scaled(rng, d, (("km", "m", 1000), ("m", "cm", 100), ("cm", "mm", 10)))


@_family("convert_mass", "unit_conversion")
def convert_mass(rng: random.Random, d: Difficulty) -> Problem:
    return _scaled(rng, d, (("kg", "g", 1000), ("t", "kg", 1000), ("g", "mg", 1000)))


@_family("convert_time", "unit_conversion")
def convert_time(rng: random.Random, d: Difficulty) -> Problem:
    if d == "easy":
        big, small, factor = rng.choice(
            (("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24))
        )
        n = rng.randint(2, 48)
        steps: Steps = (
            ("rule", f"1 {big[:-1]} = {factor} {small}"),
            ("calc", f"{n} × {factor} = {n * factor}"),
        )
        return Problem(f"Convert {n} {big} to {small}.", f"{n * factor} {small}", steps)
    hours, minutes = rng.randint(2, 9), rng.randint(2, 59)
    total = hours * 60 + minutes
    if d == "medium":
        steps = (
            ("rule", "1 hour = 60 minutes"),
            ("calc", f"{hours} × 60 = {hours * 60}"),
            ("calc", f"{hours * 60} + {minutes} = {total}"),
        )
        prompt = f"Convert {hours} hours {minutes} minutes to minutes."
        return Problem(prompt, f"{total} minutes", steps)
    steps = (
        ("rule", "1 hour = 60 minutes"),
        ("calc", f"{total} ÷ 60 = {hours}, remainder {minutes}"),
        ("check", f"{hours} × 60 + {minutes} = {total}"),
    )
    prompt = f"Convert {total} minutes to hours and minutes."
    return Problem(prompt, f"{hours} hours {minutes} minutes", steps)


@_family("convert_temperature", "unit_conversion")
def convert_temperature(rng: random.Random, d: Difficulty) -> Problem:
    if d == "hard":  # °F to °C, with °F - 32 a multiple of 9 so the answer is whole
        f = 32 + 9 * rng.randint(-10, 60)
        c = (f - 32) * 5 // 9
        steps = (
            ("rule", "°C = (°F - 32) × 5 ÷ 9"),
            ("calc", f"{f} - 32 = {f - 32}"),
            ("calc", f"{f - 32} × 5 = {(f - 32) * 5}"),
            ("calc", f"{(f - 32) * 5} ÷ 9 = {c}"),
        )
        return Problem(f"Convert {f} °F to °C.", f"{c} °C", steps)
    # Easy keeps °C a multiple of 5 so every step is whole; medium allows a one-decimal answer.
    c = 5 * rng.randint(-8, 50) if d == "easy" else rng.randint(-30, 110)
    scaled = Decimal(c * 9) / 5
    steps = (
        ("rule", "°F = °C × 9 ÷ 5 + 32"),
        ("calc", f"{c} × 9 = {c * 9}"),
        ("calc", f"{c * 9} ÷ 5 = {fmt(scaled)}"),
        ("calc", f"{fmt(scaled)} + 32 = {fmt(scaled + 32)}"),
    )
    return Problem(f"Convert {c} °C to °F.", f"{fmt(scaled + 32)} °F", steps)


def _interleave() -> tuple[Family, ...]:
    """Registry order, reshuffled round-robin by category: consecutive rows change category."""
    by_category = [[f for f in _REGISTRY if f.category == c] for c in CATEGORIES]
    width = max(len(group) for group in by_category)
    return tuple(g[k] for k in range(width) for g in by_category if k < len(g))


FAMILIES: tuple[Family, ...] = _interleave()
