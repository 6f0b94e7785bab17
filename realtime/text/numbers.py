"""English number words: cardinals, ordinals, decimals, years, digit strings. Pure.

Integers up to 999 trillion are read as words; longer ones digit by digit (an ID or a hash is
not a quantity anyone says aloud).
"""

from __future__ import annotations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
MAX_WORDS = 10**15
"""Integers from here on are read digit by digit."""


def _under_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def cardinal(n: int) -> str:
    """`n` in words: 1234 → "one thousand two hundred thirty-four"; negatives get "minus"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= MAX_WORDS:
        return digits(str(n))
    words = []
    for scale, name in _SCALES:
        if n >= scale:
            head, n = divmod(n, scale)
            words.append(f"{_under_thousand(head)} {name}")
    if n or not words:
        words.append(_under_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """21 → "twenty-first"."""
    words = cardinal(n)
    head, sep, last = max(words.rpartition(" "), words.rpartition("-"), key=lambda p: len(p[0]))
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def digits(text: str) -> str:
    """Each digit by name ("0" is "zero"); other characters are skipped."""
    return " ".join(_ONES[int(c)] for c in text if c.isdecimal())


def decimal(text: str) -> str:
    """A number as written, with its separators: "1,234.50" → "one thousand two hundred thirty-four
    point five zero", "-3.14" → "minus three point one four", ".5" → "point five"."""
    sign = ""
    if text[:1] in "-−":
        sign, text = "minus ", text[1:]
    whole, _, frac = text.replace(",", "").partition(".")
    spoken = (cardinal(int(whole)) if len(whole) <= 15 else digits(whole)) if whole else ""
    if frac:
        spoken = f"{spoken} point {digits(frac)}".strip()
    return sign + spoken


def year(n: int) -> str:
    """A year as said: 1990 → "nineteen ninety", 2000 → "two thousand", 2005 → "two thousand five",
    2026 → "twenty twenty-six", 1900 → "nineteen hundred", 1805 → "eighteen oh five"."""
    if n < 1000 or n > 9999:
        return cardinal(n)
    head, tail = divmod(n, 100)
    if 2000 <= n < 2010:
        return cardinal(n)
    if tail == 0:
        return f"{cardinal(head)} hundred"
    if tail < 10:
        return f"{cardinal(head)} oh {_ONES[tail]}"
    return f"{cardinal(head)} {cardinal(tail)}"


def plural_ending(words: str) -> str:
    """Decades and plural years: "nineteen ninety" → "nineteen nineties", "two thousand" → "two
    thousands"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"
