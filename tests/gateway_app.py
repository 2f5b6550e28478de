"""A small Chalice app that shows the local gateway's API Gateway + Lambda rules at work
(tests/test_gateway.py): binary answers, large answers and events, slow requests, and
which request a container is serving. Run only in the gateway's Lambda containers."""
from __future__ import annotations

import os
import time

from chalice import Chalice, Response

app = Chalice(app_name="gateway-test")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@app.route("/binary", methods=["GET"])
def binary():
    return Response(body=PNG, status_code=200, headers={"Content-Type": "image/png"})


@app.route("/big", methods=["GET"])
def big():
    size = int(app.current_request.query_params["size"])
    return Response(body="x" * size, status_code=200, headers={"Content-Type": "text/plain"})


@app.route("/slow", methods=["GET"])
def slow():
    time.sleep(float(app.current_request.query_params["seconds"]))
    return {"slept": True, "pid": os.getpid()}


@app.route("/echo", methods=["POST"], content_types=["application/json", "text/plain",
                                                     "application/octet-stream"])
def echo():
    request = app.current_request
    marker = request.headers.get("x-marker", "")
    time.sleep(float(request.query_params.get("pause", 0)) if request.query_params else 0)
    # Read the request again after the pause: another request must not have replaced it.
    return {"marker": app.current_request.headers.get("x-marker", ""), "sent": marker,
            "bytes": len(app.current_request.raw_body or b""), "pid": os.getpid(),
            "remaining_ms": app.lambda_context.get_remaining_time_in_millis()}
