from collections import Counter
from collections.abc import Mapping

from . import textfeatures as tf
from .reading import Parts

def ascii_words(text: str) -> list[str] | None: ...
def sentence_parts(raw: list[str], tokens: Mapping[str, tf.TokenInfo], title_words: frozenset[str],
                   day_or_month: frozenset[str]) -> Parts: ...
def count_and_vectorize(df: Counter[str], weights: dict[str, float], total: float,
                        k: int) -> dict[str, float]: ...
