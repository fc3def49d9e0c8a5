"""Helpers for the simulator tests: parse Prometheus text exposition into plain values."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

Labels = dict[str, str]


def declared_types(text: str) -> dict[str, str]:
    """`# TYPE name type` lines exactly as written in the raw text (no parser munging)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in out, f"family {name} declared twice"
            out[name] = kind
    return out


@lru_cache(maxsize=256)
def samples(text: str) -> tuple[Sample, ...]:
    """Every sample in the exposition, in order, named as the raw text names it.

    prometheus_client's parser reports every counter sample as ``<family>_total``, even
    when the text wrote the counter without the suffix (as dcgm-exporter does); undo that.
    Parsed once per distinct text: the tests look up many values in one scrape.
    """
    declared = declared_types(text)
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if family.type == "counter" and s.name not in declared and family.name in declared:
                s = s._replace(name=family.name)
            out.append(s)
    return tuple(out)


def series(text: str, name: str, **match: str) -> list[tuple[Labels, float]]:
    """All samples called ``name`` whose labels include ``match``."""
    return [
        (dict(s.labels), float(s.value))
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    ]


def value(text: str, name: str, **match: str) -> float:
    """The value of the single sample called ``name`` with labels including ``match``."""
    found = series(text, name, **match)
    assert len(found) == 1, f"expected one {name}{match}, found {len(found)}: {found}"
    return found[0][1]


def first_value(text: str, names: tuple[str, ...], **match: str) -> float:
    """The value of the single sample named by any of ``names`` (old or new spelling)."""
    found = [item for name in names for item in series(text, name, **match)]
    assert len(found) == 1, f"expected one of {names}{match}, found {len(found)}: {found}"
    return found[0][1]
