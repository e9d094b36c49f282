"""One byte encoding per JSON document, so equal documents sign and hash identically.

Keys sorted, no insignificant whitespace, UTF-8 without escapes: the parts of RFC 8785 (JCS)
that matter for the documents the relay signs and chains (strings, integers, lists, objects).
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
