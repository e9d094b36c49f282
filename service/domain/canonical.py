"""One byte encoding per JSON document, so equal documents sign and hash identically.

Keys sorted, no insignificant whitespace, UTF-8 without escapes: the parts of RFC 8785 (JCS)
that matter for the documents the relay signs and chains (strings, integers, lists, objects).
"""

from __future__ import annotations

import json
from typing import Any

# One encoder for every call: ``json.dumps`` with options builds a new one each time, which cost
# about a fifth of encoding an audit record (it holds only its options, so threads can share it).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(document: Any) -> bytes:
    return _ENCODER.encode(document).encode()
