"""JSON and YAML documents from outside, read with each key given once.

A field given twice in one object, by an editor's paste or by a system whose JSON writer keeps
both, would otherwise be read as its last value: the relay would record, or act on, terms that
whoever wrote or read the document never saw together (an ISP's categories, a judgement's
decision, an event's recipient). JSON allows it and YAML forbids it, but Python's ``json`` and
PyYAML both keep the last; every document the relay takes from outside is read here instead.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Hashable
from typing import Any


class GivenTwice(ValueError):
    """A JSON object gives the same keys (``keys``) more than once."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{', '.join(map(repr, keys))} given twice in one object.")
        self.keys = keys


def _given_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once; checked by its length first, which costs
    next to nothing on the documents that have no key twice (nearly all)."""
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    counted = Counter(key for key, _ in pairs)
    raise GivenTwice(sorted(key for key, times in counted.items() if times > 1))


def read_json(data: bytes | str) -> Any:
    """``json.loads``, refusing a key given twice in one object (``GivenTwice``)."""
    return json.loads(data, object_pairs_hook=_given_once)


@functools.cache
def yaml_loader() -> type:
    """YAML's safe loader, refusing a key given twice in one mapping as ``read_json`` does
    (a ``yaml.constructor.ConstructorError``), and so a date or time that is no day of the
    calendar; a merge (``<<``) may still be overridden.
    YAML is imported only when a document comes as YAML: not in every worker process."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    continue  # refused by SafeLoader itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} given twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_timestamp(self, node):
            """A date or time, or a ``ConstructorError`` saying where the text names none of
            the calendar (2027-02-29): PyYAML raises a bare ValueError, naming no line."""
            try:
                return super().construct_yaml_timestamp(node)
            except ValueError as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{node.value!r} is no date or time: {exc}", node.start_mark
                ) from exc

    Loader.add_constructor("tag:yaml.org,2002:timestamp", Loader.construct_yaml_timestamp)
    return Loader


def read_yaml(data: Any) -> Any:
    """YAML (and so JSON) from bytes, text or a file, refusing a key given twice in one
    mapping; a ``yaml.YAMLError`` says why it cannot be read."""
    import yaml

    return yaml.load(data, Loader=yaml_loader())  # a SafeLoader, refusing keys twice
