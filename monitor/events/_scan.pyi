from collections.abc import Callable, Mapping

from .scan import Index

WindowIndex: Callable[[], Index]  # a class with the methods of scan.Index, compiled

def lead_cosine(a: Mapping[str, float], a_lead: frozenset[str], b: Mapping[str, float]) -> float: ...
def dot(pairs: list[tuple[str, float]], b: Mapping[str, float]) -> float: ...
