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
            project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "new"})).json_body
        print(f"POST /api/projects/: {counter.total('dynamodb')} DynamoDB calls "
              f"({counter.describe('dynamodb')})")
        _task_routes(client, token, project["id"])
        _deletions(client)


def _deletions(client) -> None:
    """DELETE a project (empty, and with 10 tasks) and a user with 3 projects."""
    from chalicelib.store import projects

    admin, admin_token = make_user("bench-admin", superuser=True)
    owner, owner_token = make_user("bench-owner")
    headers = _json_headers(owner_token)
    auth = {"Authorization": f"JWT {owner_token}"}
    body, content_type = _multipart({"a.jpg": b"a" * 1000, "b.jpg": b"b" * 1000}, {})
    for tasks_count in (0, 10):
        project = client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "d"})).json_body
        for _ in range(tasks_count):
            client.http.post(f"/api/projects/{project['id']}/tasks/", headers={**auth, "Content-Type": content_type},
                             body=body)
        with counting() as counter:
            reply = client.http.delete(f"/api/projects/{project['id']}/", headers=auth)
        assert reply.status_code == 204 and projects.get(project["id"], include_deleting=True) is None
        print(f"DELETE a project with {tasks_count} tasks (all removed in the route): "
              f"{counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')}); S3: {counter.describe('s3')}")
    for _ in range(3):
        client.http.post("/api/projects/", headers=headers, body=json.dumps({"name": "mine"}))
    with counting() as counter:
        reply = client.http.delete(f"/api/admin/users/{owner['id']}/", headers={"Authorization": f"JWT {admin_token}"})
    assert reply.status_code == 204
    print(f"DELETE a user with 3 projects (handed over in the route): {counter.total('dynamodb')} DynamoDB calls "
          f"({counter.describe('dynamodb')})")


def _multipart(files: dict[str, bytes], fields: dict[str, str]) -> tuple[bytes, str]:
    import requests

    prepared = requests.Request("POST", "http://x/", files=[("images", (n, c)) for n, c in files.items()],
                                data=fields).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def _task_routes(client, token: str, project_id: int) -> None:
    from chalicelib.store import nodes

    node = nodes.create({"hostname": "127.0.0.1", "port": 1})
    auth = {"Authorization": f"JWT {token}"}
    base = f"/api/projects/{project_id}/tasks/"
    body, content_type = _multipart({"a.jpg": b"a" * 1000, "b.jpg": b"b" * 1000},
                                    {"options": '[{"name": "dsm", "value": true}]',
                                     "processing_node": str(node["id"]), "auto_processing_node": "false"})
    with counting() as counter:
        task = client.http.post(base, headers={**auth, "Content-Type": content_type}, body=body).json_body
    print(f"POST {base} (2 images): {counter.total('dynamodb')} DynamoDB calls "
          f"({counter.describe('dynamodb')}); S3: {counter.describe('s3')}")
    with counting() as counter:
        client.http.get(f"{base}{task['id']}/", headers=auth)
    print(f"GET one task: {counter.total('dynamodb')} DynamoDB calls ({counter.describe('dynamodb')})")
    for _ in range(99):
        client.http.post(base, headers={**auth, "Content-Type": content_type}, body=body)
    with counting() as counter:
        listed = client.http.get(base, headers=auth).json_body
    print(f"GET {base} with {len(listed)} tasks: {counter.total('dynamodb')} DynamoDB calls "
          f"({counter.describe('dynamodb')})")


if __name__ == "__main__":
    main()
