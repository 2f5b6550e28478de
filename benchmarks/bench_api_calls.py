"""DynamoDB and S3 calls per request for the main routes (they must not grow with data)."""
from __future__ import annotations

import json

from benchmarks.common import counting, make_user, moto_aloft


def _json_headers(token: str) -> dict:
    return {"Authorization": f"JWT {token}", "Content-Type": "application/json"}


def main() -> None:
    print("== DynamoDB calls per request ==")
    with moto_aloft() as client:
        _, token = make_user("bench")
        headers = _json_headers(token)
        for projects in (1, 25, 100):
            while True:
                listed = client.http.get("/api/projects/", headers=headers).json_body
                if len(listed) >= projects:
                    break
                client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "p"}))
            for path in ("/api/projects/", "/api/projects/?page=2"):
                if "page" in path and projects < 11:
                    continue
                with counting() as counter:
                    reply = client.http.get(path, headers=headers)
                assert reply.status_code == 200
                print(f"GET {path:<24} with {projects:>3} projects: "
                      f"{counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')})")
        with counting() as counter:
            client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "new"}))
        print(f"POST /api/projects/: {counter.total('dynamodb')} DynamoDB calls "
              f"({counter.describe('dynamodb')})")


if __name__ == "__main__":
    main()
