"""How English text with numbers, symbols and abbreviations is said: the front end's `full` rules.

Each `Rule` is a pattern and its reading; `normalize.py` runs them in one left-to-right pass, the
first rule listed winning where several match at one place. Choices a listener may notice:

- Dates: ISO `2026-12-07`; slashed dates in US order, month first (`12/07/2026` is December 7th),
  unless the first number cannot be a month (`25/12/2026` is read day first); `Dec 7, 2026` and
  `7 December 2026`. Months are recognised capitalised only (`may` is a verb).
- A bare four-digit number from 1100 to 2099 is read as a year ("twenty twenty-six") after a word
  that introduces one (`in`, `since`, `by`, a month, ...); elsewhere as a number ("two thousand
  twenty-six"). `1990s` is "nineteen nineties".
- Acronyms: a word of two to four capitals is spelled ("API" → "A P I"), unless it is one of a few
  said as a word (`SAID_AS_WORDS`: NASA, NATO, ...) or a Roman numeral; five or more capitals are
  left alone (said as a word, or shouting). Text that is mostly capitals spells nothing.
- Phone numbers (`555-123-4567`, `(555) 123-4567`, `+1 555 123 4567`) are read digit by digit in
  their groups, with a short pause between groups.
- URLs and e-mail addresses are spoken without their scheme and `www.`: "example dot com slash docs".
- Letters or digits joined by hyphens (`A-P-I`, `1-2-3`) are spelled one by one (SSML's `say-as`
  uses this form).
"""

from __future__ import annotations

import re

from .markup import Rule
from .numbers import cardinal, decimal, digits, ordinal, plural_ending, year

_MONTHS = "January February March April May June July August September October November December".split()
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
"""A number as written: thousands separators, a decimal part."""

SAID_AS_WORDS = frozenset(
    "NASA NATO UNESCO UNICEF FIFA NASDAQ OPEC IKEA LASER RADAR SCUBA GIF JPEG PIN SIM RAM ROM LAN WAN "
    "CAD COVID AIDS ASAP CAPTCHA SWAT".split()
)
_ROMAN = re.compile(r"[IVX]+")
_YEAR_CUES = frozenset(
    "in since by from until till of before after during year circa around to and between through "
    "summer winter spring autumn fall early late mid".split()
) | {m.lower() for m in _MONTHS}

_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_SCALE = {
    "k": "thousand", "K": "thousand", "m": "million", "M": "million", "bn": "billion", "b": "billion",
    "B": "billion", "thousand": "thousand", "million": "million", "billion": "billion",
    "trillion": "trillion",
}  # fmt: skip
_UNITS = {
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "mi": "mile",
    "ft": "foot", "kg": "kilogram", "g": "gram", "mg": "milligram", "lb": "pound", "lbs": "pound",
    "oz": "ounce", "l": "liter", "L": "liter", "ml": "milliliter", "mL": "milliliter",
    "mph": "mile per hour", "km/h": "kilometer per hour", "kph": "kilometer per hour",
    "KB": "kilobyte", "kB": "kilobyte", "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte",
    "Hz": "hertz", "kHz": "kilohertz", "MHz": "megahertz", "GHz": "gigahertz",
    "ms": "millisecond", "min": "minute", "hrs": "hour", "sec": "second",
    "kW": "kilowatt", "kWh": "kilowatt hour", "W": "watt", "V": "volt",
}  # fmt: skip
_UNIT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_PLURAL_EXCEPTIONS = {"foot": "feet", "hertz": "hertz", "kilohertz": "kilohertz", "megahertz": "megahertz",
                      "gigahertz": "gigahertz"}  # fmt: skip
_ABBREVIATIONS = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor", "Jr": "Junior",
    "Sr": "Senior", "Mt": "Mount", "vs": "versus", "Vs": "versus", "approx": "approximately",
    "e.g": "for example", "i.e": "that is", "etc": "et cetera", "a.m": "a m", "p.m": "p m",
    "cf": "compare",
}  # fmt: skip


def _words_before(text: str, at: int) -> str:
    """The word before position `at` (letters only, lower-cased)."""
    m = re.search(r"([A-Za-z]+)\W*$", text[max(0, at - 40) : at])
    return m.group(1).lower() if m else ""


def _capitalised_after(text: str, at: int) -> bool:
    return re.match(r"\s+[A-Z]", text[at : at + 3]) is not None


def _unit_words(amount: str, unit: str) -> str:
    if amount in ("1", "one"):
        return unit
    head, _, last = unit.rpartition(" ")
    if " per " in unit:
        first, _, rest = unit.partition(" per ")
        return f"{_PLURAL_EXCEPTIONS.get(first, first + 's')} per {rest}"
    plural = _PLURAL_EXCEPTIONS.get(last, last + "s")
    return f"{head} {plural}".strip()


def _number(text: str) -> str:
    return decimal(text.replace("−", "-"))


# -- readers: (match, whole text) → what to say, or None to keep the match as written ------------


def _url(m: re.Match[str], text: str) -> str:
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group())
    return _spell_address(url.rstrip("/"))


_ADDRESS_SYMBOLS = {
    ".": " dot ", "/": " slash ", "-": " dash ", "_": " underscore ", ":": " colon ", "?": " question mark ",
    "=": " equals ", "&": " and ", "#": " hash ", "@": " at ", "~": " tilde ", "+": " plus ", "%": " percent ",
}  # fmt: skip


def _spell_address(address: str) -> str:
    spoken = "".join(_ADDRESS_SYMBOLS.get(c, c) for c in address)
    return re.sub(r" {2,}", " ", spoken).strip()


def _email(m: re.Match[str], text: str) -> str:
    return _spell_address(m.group())


def _version(m: re.Match[str], text: str) -> str:
    num = m.group("version_num") or m.group("version_num2")
    spoken = " point ".join(cardinal(int(p)) for p in num.split("."))
    return f"version {spoken}" if m.group("version_num") else spoken


def _phone(m: re.Match[str], text: str) -> str:
    groups = re.findall(r"\d+", m.group())
    spoken = ", ".join(digits(g) for g in groups)
    return ("plus " if m.group().startswith("+") else "") + spoken


def _date_words(month: int, day: int, year_text: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    spoken = f"{_MONTHS[month - 1]} {ordinal(day)}"
    if year_text:
        n = int(year_text)
        if len(year_text) == 2:
            n += 2000 if n < 50 else 1900
        spoken += f", {year(n)}"
    return spoken


def _iso_date(m: re.Match[str], text: str) -> str | None:
    return _date_words(int(m.group("iso_m")), int(m.group("iso_d")), m.group("iso_y"))


def _slash_date(m: re.Match[str], text: str) -> str | None:
    first, second = int(m.group("sl_a")), int(m.group("sl_b"))
    month, day = (second, first) if first > 12 >= second else (first, second)
    return _date_words(month, day, m.group("sl_y"))


def _month_number(name: str) -> int:
    return next(i for i, full in enumerate(_MONTHS, 1) if full.startswith(name[:3]))


def _month_day(m: re.Match[str], text: str) -> str | None:
    return _date_words(_month_number(m.group("md_m")), int(m.group("md_d")), m.group("md_y"))


def _day_month(m: re.Match[str], text: str) -> str | None:
    day, month = int(m.group("dm_d")), _month_number(m.group("dm_m"))
    if not 1 <= day <= 31:
        return None
    spoken = f"the {ordinal(day)} of {_MONTHS[month - 1]}"
    return spoken + (f", {year(int(m.group('dm_y')))}" if m.group("dm_y") else "")


def _meridiem(value: str | None) -> str:
    return f" {value[0].lower()} m" if value else ""


def _kept_stop(m: re.Match[str], text: str) -> str:
    """A full stop the match swallowed ("7 p.m." ending a sentence) given back, so the engine still
    hears the sentence end."""
    return "." if m.group().endswith(".") and _ends_sentence(text, m.end()) else ""


def _ends_sentence(text: str, at: int) -> bool:
    return at >= len(text.rstrip()) or _capitalised_after(text, at)


def _clock(m: re.Match[str], text: str) -> str | None:
    hour, minute = int(m.group("t_h")), int(m.group("t_m"))
    meridiem = m.group("t_ap")
    if hour > 24 or minute > 59 or (meridiem and hour > 12):
        return None
    if minute == 0:
        spoken = cardinal(hour) if meridiem else cardinal(hour) + (" hundred" if hour > 12 else " o'clock")
    elif minute < 10:
        spoken = f"{cardinal(hour)} oh {cardinal(minute)}"
    else:
        spoken = f"{cardinal(hour)} {cardinal(minute)}"
    if m.group("t_s"):
        spoken += f" and {cardinal(int(m.group('t_s')))} seconds"
    return spoken + _meridiem(meridiem) + _kept_stop(m, text)


def _hour(m: re.Match[str], text: str) -> str | None:
    hour = int(m.group("h_h"))
    return None if hour > 12 else cardinal(hour) + _meridiem(m.group("h_ap")) + _kept_stop(m, text)


def _money(m: re.Match[str], text: str) -> str:
    one, many, minor_one, minor_many = _CURRENCY[m.group("cur_sym")]
    whole = m.group("cur_int").replace(",", "")
    frac = m.group("cur_frac")
    scale = m.group("cur_scale")
    if scale:
        amount = decimal(whole + (f".{frac}" if frac else ""))
        return f"{amount} {_SCALE[scale]} {many}"
    if frac and len(frac) == 2 and len(whole) <= 15:
        units, cents = int(whole), int(frac)
        parts = [f"{cardinal(units)} {one if units == 1 else many}"] if units or not cents else []
        if cents:
            parts.append(f"{cardinal(cents)} {minor_one if cents == 1 else minor_many}")
        return " and ".join(parts)
    amount = decimal(whole + (f".{frac}" if frac else ""))
    return f"{amount} {one if whole == '1' and not frac else many}"


def _percent(m: re.Match[str], text: str) -> str:
    return f"{_number(m.group('pct'))} percent"


def _degrees(m: re.Match[str], text: str) -> str:
    amount = m.group("deg")
    scale = {"C": " Celsius", "F": " Fahrenheit", "K": " kelvin"}.get(m.group("deg_s") or "", "")
    return f"{_number(amount)} {'degree' if amount == '1' else 'degrees'}{scale}"


def _unit(m: re.Match[str], text: str) -> str:
    amount = m.group("u_n")
    return f"{_number(amount)} {_unit_words(amount, _UNITS[m.group('u_u')])}"


def _ordinal(m: re.Match[str], text: str) -> str:
    return ordinal(int(m.group("ord")))


def _decade(m: re.Match[str], text: str) -> str:
    century, decade = m.group("dec_c"), int(m.group("dec_d"))
    if century is None:
        return plural_ending(cardinal(decade * 10)) if decade else "noughties"
    return plural_ending(year(int(century) * 100 + decade * 10))


def _range(m: re.Match[str], text: str) -> str:
    return f"{_number(m.group('r_a'))} to {_number(m.group('r_b'))}"


def _plain_number(m: re.Match[str], text: str) -> str:
    written = m.group()
    bare = written.lstrip("-−")
    if bare.isdigit() and len(bare) > 1 and bare.startswith("0"):
        return digits(bare)  # "007", a code rather than a quantity
    if bare.isdigit() and len(bare) == 4 and 1100 <= int(bare) <= 2099 and bare == written:
        after = text[m.end() : m.end() + 4]
        if _words_before(text, m.start()) in _YEAR_CUES or re.match(r"\s?(?:AD|BC|BCE|CE)\b", after):
            return year(int(bare))
    return _number(written)


def _abbreviation(m: re.Match[str], text: str) -> str | None:
    word = m.group("ab") or m.group("ab2")
    spoken = _abbreviation_words(word, m, text)
    if spoken is None or spoken in _TITLES or not m.group().endswith("."):
        return spoken
    # "etc." or "Main St." ending a sentence keeps its full stop: the engine hears the sentence end.
    return spoken + "." if _ends_sentence(text, m.end()) else spoken


_TITLES = frozenset("Doctor Saint Mister Missus Miz Professor Mount".split())


def _abbreviation_words(word: str, m: re.Match[str], text: str) -> str | None:
    end = m.end()
    if word == "Dr":  # "Dr. Smith", but "Sunset Dr." at a sentence end
        street = re.search(r"[A-Z][a-z]+\s$", text[max(0, m.start() - 30) : m.start()]) is not None
        return "Drive" if street and not _capitalised_after(text, end) else "Doctor"
    if word == "St":
        return "Saint" if _capitalised_after(text, end) else "Street"
    if word == "No":
        return "number" if re.match(r"\s?\d", text[end : end + 2]) else None
    return _ABBREVIATIONS[word]


def _spelled(m: re.Match[str], text: str) -> str:
    return " ".join(digits(c) if c.isdigit() else c.upper() for c in m.group().split("-"))


def _initials(m: re.Match[str], text: str) -> str:
    return " ".join(c for c in m.group() if c.isalpha())


def _acronym(m: re.Match[str], text: str) -> str | None:
    word, plural = m.group("acr"), m.group("acr_s")
    if word in SAID_AS_WORDS or _ROMAN.fullmatch(word):
        return None
    spoken = " ".join(word)
    return spoken + "'s" if plural else spoken


def _ampersand(m: re.Match[str], text: str) -> str:
    return " and "


def _number_sign(m: re.Match[str], text: str) -> str:
    return "number "


RULES = (
    Rule("url", r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?'’”)\]}]", _url),
    Rule("email", r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", _email),
    Rule("domain", r"(?<![\w@./-])(?:[A-Za-z0-9-]+\.)+(?:com|org|net|io|dev|ai|app|co|edu|gov|uk|de|fr|info|tv|me)(?![\w@-]|\.\w)", _url),
    Rule("phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)", _phone),
    Rule("version", r"(?<![\w.])(?:[vV](?P<version_num>\d+(?:\.\d+){0,3})|(?P<version_num2>\d+\.\d+\.\d+(?:\.\d+)?))(?![\w]|\.\d)", _version),
    Rule("iso_date", r"(?<![\w-])(?P<iso_y>\d{4})-(?P<iso_m>\d{2})-(?P<iso_d>\d{2})(?![\w-])", _iso_date),
    Rule("slash_date", r"(?<![\w/])(?P<sl_a>\d{1,2})/(?P<sl_b>\d{1,2})/(?P<sl_y>\d{4}|\d{2})(?![\w/])", _slash_date),
    Rule("month_day", rf"(?<!\w)(?P<md_m>{_MONTH})\.?\s(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s(?P<md_y>\d{{4}}))?(?!\w|:)", _month_day),
    Rule("day_month", rf"(?<![\w.])(?P<dm_d>\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?(?P<dm_m>{_MONTH})\.?(?:,?\s(?P<dm_y>\d{{4}}))?(?!\w)", _day_month),
    Rule("clock", r"(?<![\w:.])(?P<t_h>\d{1,2}):(?P<t_m>\d{2})(?::(?P<t_s>\d{2}))?(?:\s?(?P<t_ap>[AaPp])(?:\.[Mm]\.|[Mm]\b))?(?![\w:])", _clock),
    Rule("hour", r"(?<![\w:.])(?P<h_h>\d{1,2})\s?(?P<h_ap>[AaPp])(?:\.[Mm]\.|[Mm]\b)", _hour),
    Rule("money", r"(?<![\w])(?P<cur_sym>[$€£¥])\s?(?P<cur_int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cur_frac>\d+))?(?:\s?(?P<cur_scale>thousand|million|billion|trillion|bn|[kKmMbB])(?!\w))?", _money),
    Rule("percent", rf"(?<![\w.])(?P<pct>[-−]?(?:{_NUM}))\s?%", _percent),
    Rule("degrees", rf"(?<![\w.])(?P<deg>[-−]?(?:{_NUM}))\s?°(?:\s?(?P<deg_s>[CFK])(?!\w))?", _degrees),
    Rule("unit", rf"(?<![\w.])(?P<u_n>[-−]?(?:{_NUM}))\s?(?P<u_u>{_UNIT})(?![\w/])", _unit),
    Rule("ordinal", r"(?<![\w.])(?P<ord>\d{1,15})(?:st|nd|rd|th)(?!\w)", _ordinal),
    Rule("decade", r"(?<![\w.])['’]?(?P<dec_c>1[1-9]|20)?(?P<dec_d>\d)0s(?!\w)", _decade),
    Rule("spelled", r"(?<![\w-])(?:[A-Za-z0-9]-){2,}[A-Za-z0-9](?![\w-])", _spelled),
    Rule("range", rf"(?<![\w.-])(?P<r_a>{_NUM})\s?[-–]\s?(?P<r_b>{_NUM})(?![\w.-]|\.\d)", _range),
    Rule("number", rf"(?<![\w.])[-−]?(?:{_NUM})(?![\w]|[.,]\d)", _plain_number),
    Rule("abbreviation", r"(?<![\w.])(?:(?P<ab>Dr|St|Mr|Mrs|Ms|Prof|Jr|Sr|Mt|No|approx|etc|e\.g|i\.e|a\.m|p\.m|cf)\.|(?P<ab2>[vV]s)\b\.?)", _abbreviation),
    Rule("initials", r"(?<![\w.])(?:[A-Z]\.){2,}(?!\w)", _initials),
    Rule("acronym", r"(?<![\w.'’-])(?P<acr>[A-Z]{2,4})(?P<acr_s>s)?(?![\w'’-]|\.\w)", _acronym),
    Rule("ampersand", r"\s?&\s?", _ampersand),
    Rule("number_sign", r"#(?=\d)", _number_sign),
)  # fmt: skip


SPACED_READINGS = (
    rf"(?<!\w)(?:[$€£¥]\d[\d,.]*\s(?:thousand|million|billion|trillion|bn)(?!\w)"
    rf"|\d[\d,.]*\s(?:{_UNIT})(?![\w/])"
    r"|\d{1,2}(?::\d\d){0,2}\s[AaPp](?:\.[Mm]\.|[Mm](?!\w))"
    rf"|{_MONTH}\.?\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s\d{{4}})?(?!\w)"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?{_MONTH}\.?(?:,?\s\d{{4}})?(?!\w)"
    r"|(?:Dr|Mr|Mrs|Ms|Prof|St|Mt)\.\s[A-Z][\w'’-]*|No\.\s\d+"
    r"|(?:\+\d{1,3}\s)?\(\d{3}\)\s?\d{3}[ .-]\d{4}|\+\d{1,3}\s\d{3}\s\d{3}\s\d{4})"
)
"""Readings that hold a space ("$1.5 billion", "7:15 pm", "Dec 7, 2026", "Dr. Smith", "(555) 123-4567"):
the segmenter never cuts inside one, so the front end always sees them whole."""
SPACED_READING_START = (
    rf"(?<![\w$€£¥.,:/-])(?:[$€£¥]?\d(?:[\d,.:]*\d)?|{_MONTH}\.?(?:\s\d{{1,2}}(?:st|nd|rd|th)?,?)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?(?:\sof)?(?:\s{_MONTH}\.?,?)?"
    r"|(?:Dr|Mr|Mrs|Ms|Prof|St|Mt|No)\.|\(\d{3}\)|\+\d{1,3}(?:\s\d{3}){0,2})\s\S*\Z"
)
"""The start of such a reading, a space and the word still arriving at the end of the text so far:
what follows may complete it ("Dec 7, 2" may be "Dec 7, 2026")."""
