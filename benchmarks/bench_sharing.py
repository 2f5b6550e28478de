"""DynamoDB calls of a shared project list and of sharing checks: they must not grow with the
projects or shares in the tables (only with the caller's groups, and with every 100 projects
shared with the caller: DynamoDB's BatchGetItem size)."""
from __future__ import annotations

import json

from benchmarks.common import counting, make_user, moto_aloft


def _edit(client, token: str, project_id: int, rows: list[dict]) -> None:
    reply = client.http.post(f"/api/projects/{project_id}/edit/", body=json.dumps({"permissions": rows}),
                             headers={"Authorization": f"JWT {token}", "Content-Type": "application/json"})
    assert reply.status_code == 200, reply.body


def _project(client, token: str, name: str) -> int:
    reply = client.http.post("/api/projects/", body=json.dumps({"name": name}),
                             headers={"Authorization": f"JWT {token}", "Content-Type": "application/json"})
    return json.loads(reply.body)["id"]


def main() -> None:
    print("== Sharing: DynamoDB calls per request ==")
    with moto_aloft() as client:
        from chalicelib.store import groups, users

        _, owner_token = make_user("owner")
        _, other_token = make_user("other")
        sharee, sharee_token = make_user("sharee")
        make_user("bystander")
        crews = [groups.create(f"crew{i}") for i in range(3)]
        auth = {"Authorization": f"JWT {sharee_token}"}
        shared = 0
        for target, in_groups in ((1, 0), (10, 0), (100, 0), (100, 1), (100, 3), (150, 3)):
            for group in crews[:in_groups]:
                users.join_group(users.get("sharee"), group["id"])
            while shared < target:
                # a project shared with the sharee, one with someone else, and one the sharee owns
                project = _project(client, owner_token, f"s{shared}")
                _edit(client, owner_token, project, [{"username": "sharee", "permissions": ["view"]},
                                                     {"username": "bystander", "permissions": ["view"]}])
                _edit(client, other_token, _project(client, other_token, "x"),
                      [{"username": "bystander", "permissions": ["view", "change"]}])
                _project(client, sharee_token, "own")
                shared += 1
            with counting() as counter:
                reply = client.http.get("/api/projects/", headers=auth)
            assert reply.status_code == 200
            listed = json.loads(reply.body)
            print(f"GET /api/projects/ sharee in {in_groups} groups, {shared:>3} shared + {shared:>3} own of "
                  f"{3 * shared} projects ({len(listed)} listed): {counter.total('dynamodb')} DynamoDB calls "
                  f"({counter.describe('dynamodb')})")
        one = next(p for p in listed if not p["owned"])
        for path in (f"/api/projects/{one['id']}/", f"/api/projects/{one['id']}/tasks/"):
            with counting() as counter:
                assert client.http.get(path, headers=auth).status_code == 200
            print(f"GET {path} as a sharee in 3 groups: {counter.total('dynamodb')} DynamoDB calls "
                  f"({counter.describe('dynamodb')})")
        owner_auth = {"Authorization": f"JWT {owner_token}"}
        with counting() as counter:
            assert client.http.get(f"/api/projects/{one['id']}/permissions/", headers=owner_auth).status_code == 200
        print(f"GET .../permissions/ (2 users shared): {counter.total('dynamodb')} DynamoDB calls "
              f"({counter.describe('dynamodb')})")


if __name__ == "__main__":
    main()
