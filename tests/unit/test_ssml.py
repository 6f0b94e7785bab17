"""The SSML subset (`realtime/text/ssml.py`): what each element becomes, documents split anywhere
giving what they give whole, malformed markup never raising, and `check` for REST."""

from __future__ import annotations

import random

import pytest

from realtime.text.ssml import BREAK, MAX_TAG, RATE, Control, SsmlParser, check, split_marks


def parse(*chunks: str) -> str:
    parser = SsmlParser()
    return "".join(parser.feed(c) for c in chunks) + parser.close()


def pieces(document: str) -> list[str | Control]:
    """The parse as text pieces (whitespace-normalised) and controls, as the context sees it."""
    out: list[str | Control] = []
    for part in split_marks(parse(document)):
        if isinstance(part, Control):
            out.append(part)
        elif part.split():
            out.append(" ".join(part.split()))
    return out


DOCUMENTS = [
    '<speak>Hello <break time="1s"/> world &amp; friends.</speak>',
    '<?xml version="1.0"?><speak>Call <say-as interpret-as="telephone">555-1234</say-as> now.</speak>',
    '<speak><say-as interpret-as="characters">API</say-as> is <sub alias="World Wide Web">WWW</sub>.</speak>',
    '<speak><prosody rate="slow">Slow <prosody rate="150%">fast</prosody> slow</prosody> then normal.</speak>',
    "<speak>a &lt; b &amp;&amp; c &gt; d, caf&#233; &#x263A; &unknown; &amp</speak>",
    "<speak><p>One.</p><s>Two</s><!-- a <comment> --><mystery attr='x'>kept</mystery></speak>",
    '<speak>The <say-as interpret-as="ordinal">21</say-as> time, <break strength="x-strong"/>done',
    "text with a < sign and <unclosed tag that never ends " + "x" * (MAX_TAG + 10),
    '<speak><break time="500ms"/><say-as interpret-as="digits">2026</say-as></speak>',
]


def test_elements() -> None:
    assert pieces(DOCUMENTS[0]) == ["Hello", Control(BREAK, 1.0), "world & friends."]
    assert pieces(DOCUMENTS[1]) == ["Call 5-5-5, 1-2-3-4 now."]
    assert pieces(DOCUMENTS[2]) == ["A-P-I is World Wide Web."]
    assert pieces(DOCUMENTS[3]) == [
        Control(RATE, 0.75), "Slow", Control(RATE, 1.5), "fast", Control(RATE, 0.75), "slow",
        Control(RATE, 1.0), "then normal.",
    ]  # fmt: skip
    assert pieces(DOCUMENTS[4]) == ["a < b && c > d, café ☺ &unknown; &amp"]
    assert parse(DOCUMENTS[5]) == "One.\nTwo\nkept"
    assert pieces(DOCUMENTS[6]) == ["The 21st time,", Control(BREAK, 1.0), "done"]
    assert pieces(DOCUMENTS[8]) == [Control(BREAK, 0.5), "2-0-2-6"]


def test_a_lone_angle_bracket_too_long_to_be_a_tag_is_text() -> None:
    out = parse(DOCUMENTS[7])
    assert out.startswith("text with a < sign and <unclosed tag")


@pytest.mark.parametrize(
    ("tag", "seconds"),
    [('<break time="250ms"/>', 0.25), ('<break time="2s"/>', 2.0), ('<break time="1.5s"/>', 1.5),
     ("<break/>", 0.4), ('<break strength="weak"/>', 0.2), ('<break time="99s"/>', 10.0),
     ('<break time="soon"/>', 0.4)],
)  # fmt: skip
def test_break_times(tag: str, seconds: float) -> None:
    assert pieces(f"a{tag}b") == ["a", Control(BREAK, seconds), "b"]


def test_break_of_strength_none_is_no_break() -> None:
    assert pieces('a<break strength="none"/>b') == ["a b"]


@pytest.mark.parametrize(
    ("rate", "value"), [("x-slow", 0.5), ("fast", 1.25), ("80%", 0.8), ("1.2", 1.2), ("+20%", 1.2)]
)
def test_prosody_rates(rate: str, value: float) -> None:
    assert pieces(f'<prosody rate="{rate}">x</prosody>') == [Control(RATE, value), "x", Control(RATE, 1.0)]
    assert pieces(f"<prosody rate='{rate}'>x</prosody>") == [Control(RATE, value), "x", Control(RATE, 1.0)]


def test_client_text_cannot_forge_a_control_mark() -> None:
    assert pieces("a \ue000b5\ue001 b") == ["a b5 b"]


def test_markup_is_never_spoken_when_a_tag_is_cut_across_tokens() -> None:
    assert parse("Hello <br", "eak ti", 'me="1s"/>', " world") == parse('Hello <break time="1s"/> world')
    parser = SsmlParser()
    assert parser.feed("Hello <br") == "Hello "
    assert parser.feed("eak ti") == ""


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_every_two_way_split_gives_the_whole_result(document: str) -> None:
    whole = parse(document)
    for cut in range(len(document) + 1):
        assert parse(document[:cut], document[cut:]) == whole, cut


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_random_many_way_splits_give_the_whole_result(document: str) -> None:
    rng = random.Random(19)
    whole = parse(document)
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(document) + 1), k=min(len(document), rng.randint(2, 12))))
        chunks = [document[a:b] for a, b in zip([0, *cuts], [*cuts, len(document)], strict=True)]
        assert parse(*chunks) == whole, chunks


@pytest.mark.parametrize(
    "document",
    ["<speak><prosody rate='slow'>never closed", "</speak></p>stray closers", "<<<>>>", "<say-as>x",
     "<sub alias='a'>", "&#xFFFFFFF; &#0; &#55296;", "<", "&", "<break time='1s'", "<!-- open comment"],
)  # fmt: skip
def test_malformed_markup_never_raises_and_never_speaks_a_tag(document: str) -> None:
    out = parse(document)
    assert "<speak" not in out and "prosody" not in out and "</" not in out


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('<speak>Hi <break time="1s"/></speak>', None),
        ("<speak>Hi", "<speak> is never closed"),
        ("<speak>Hi</p></speak>", "</p> at character 9 closes no open <p>"),
        ("<speak><s>Hi</speak>", "</speak> at character 12 comes before </s>"),
        ("<speak>a < b</speak>", "a '<' at character 9 starts no tag (write &lt; for a literal '<')"),
        ('<break time="soon"/>', "break time 'soon' is not a duration such as '500ms' or '1s'"),
        (
            '<prosody rate="zippy">x</prosody>',
            "prosody rate 'zippy' is not a rate such as 'slow', '80%' or '1.2'",
        ),
    ],
)
def test_check_names_what_is_malformed(document: str, problem: str | None) -> None:
    assert check(document) == problem
