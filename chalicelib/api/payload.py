"""What an answer costs against Lambda's response cap, counted as it really travels.

A route's body reaches the client inside the proxy result, and that result is what
Lambda caps (limits.LAMBDA_MAX_RESPONSE_BYTES; over it API Gateway answers 502).
The body is escaped twice on the way: Chalice renders a JSON body with json.dumps
(ASCII: a control character becomes `\\u00XX`, six bytes, a non-ASCII character
`\\uXXXX`, a character outside the BMP a twelve-byte surrogate pair), and the Lambda
runtime serializes the proxy result, body string included, as JSON once more, so
every `"` and `\\` in the body doubles. `escaped()` counts a piece of body text the
way it lands in that payload (ASCII escapes: the larger of the two encodings the
runtime may use). Routes whose answer grows with user data keep the escaped body
within BUDGET, which leaves the rest of the cap for headers and the proxy's own fields.
"""
from __future__ import annotations

import json
from typing import Any

from ..limits import RESPONSE_BUDGET_BYTES

BUDGET = RESPONSE_BUDGET_BYTES


def escaped(text: str) -> int:
    """Bytes `text`, a piece of a body, takes inside the proxy result."""
    return len(json.dumps(text)) - 2


def render(value: Any) -> str:
    """A JSON body exactly as Chalice renders it (compact separators, ASCII)."""
    return json.dumps(value, separators=(",", ":"))
