"""The front door's hard limits on AWS, in one place.

API Gateway (REST API) and Lambda refuse what exceeds these. The local gateway
(aloft_local/gateway.py) enforces the same numbers, routes keep their answers
below them, and the OpenAPI document and the README state them. The API
function's timeout in .chalice/config.json (`lambda_timeout`) is
API_TIMEOUT_SECONDS; tests/test_package.py holds the two together.
"""
from __future__ import annotations

# API Gateway REST API payload quota (not adjustable). Over it: 413, text body.
API_GATEWAY_MAX_BODY_BYTES = 10_485_760
# A synchronous Lambda invocation's request payload: the whole proxy event as JSON,
# with a binary body base64-encoded inside it (so ~4.7 MB of file bytes).
LAMBDA_MAX_EVENT_BYTES = 6_291_456
# A synchronous Lambda invocation's response payload (the proxy result as JSON).
LAMBDA_MAX_RESPONSE_BYTES = 6_291_456
# API Gateway's integration timeout, and the API function's Lambda timeout.
API_TIMEOUT_SECONDS = 29

# What a route allows itself for one answer, measured as the body travels inside the
# proxy result (escapes included: chalicelib/api/payload.py): under the response cap with
# room for headers and the proxy result's own fields.
RESPONSE_BUDGET_BYTES = 4 * 1024 * 1024
# Raw file bytes that fit one Lambda event once base64-encoded (4/3), leaving room
# for headers and the multipart framing: the ceiling of a one-shot task create.
LAMBDA_MAX_FILE_BYTES = (LAMBDA_MAX_EVENT_BYTES - 64 * 1024) * 3 // 4
