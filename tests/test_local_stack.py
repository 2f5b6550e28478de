"""`make run`'s stack as a real process: HTTP on a free port, moto storage, seeding, sharing."""
from __future__ import annotations

import requests


def login(url: str, username: str, password: str) -> str:
    reply = requests.post(f"{url}/api/token-auth/", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


def test_token_create_list_over_real_http(stack_process):
    stack = stack_process()
    assert any("superuser: admin / admin" in line for line in stack.banner)
    token = login(stack.url, "admin", "admin")
    headers = {"Authorization": f"JWT {token}"}
    created = requests.post(f"{stack.url}/api/projects/", headers=headers, data={"name": "Hello"})
    assert created.status_code == 201 and isinstance(created.json()["id"], int)
    listed = requests.get(f"{stack.url}/api/projects/", headers=headers).json()
    assert [p["id"] for p in listed] == [created.json()["id"]]
    page = requests.get(f"{stack.url}/api/projects/?page=1", headers=headers).json()
    assert page["count"] == 1 and page["results"][0]["name"] == "Hello"


def test_two_stacks_on_one_endpoint_share_data(stack_process):
    first = stack_process(ALOFT_ADMIN_USERNAME="boss", ALOFT_ADMIN_PASSWORD="first-pw")
    second = stack_process(AWS_ENDPOINT_URL=first.storage_url, ALOFT_ADMIN_USERNAME="boss",
                           ALOFT_ADMIN_PASSWORD="second-pw")
    assert any("already exists" in line for line in second.banner)
    assert any("nothing is stored locally" in line for line in second.banner), second.banner
    assert not (second.data_dir / "snapshot").exists()
    token = login(first.url, "boss", "first-pw")  # the existing user was left alone
    assert requests.post(f"{second.url}/api/token-auth/",
                         data={"username": "boss", "password": "second-pw"}).status_code == 400
    headers = {"Authorization": f"JWT {token}"}
    made = requests.post(f"{first.url}/api/projects/", headers=headers, json={"name": "shared"}).json()
    seen = requests.get(f"{second.url}/api/projects/{made['id']}/", headers=headers)
    assert seen.status_code == 200 and seen.json()["name"] == "shared"


def test_a_kept_table_gains_the_indexes_the_template_added():
    """A data folder from an earlier version keeps its tables; at start they get the global
    secondary indexes added to infra/resources.json since, as a stack update would on AWS."""
    import boto3
    from moto import mock_aws

    from aloft_local.resources import create_resources, load_template

    template = load_template()
    tasks = template["Resources"]["TasksTable"]["Properties"]
    with mock_aws():
        dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        dynamodb.create_table(TableName="old-TasksTable", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[a for a in tasks["AttributeDefinitions"]
                                                    if a["AttributeName"] in ("project_id", "id")],
                              KeySchema=tasks["KeySchema"])
        dynamodb.put_item(TableName="old-TasksTable", Item={
            "project_id": {"N": "1"}, "id": {"S": "t1"}, "active": {"S": "1"}, "created_at": {"S": "2026"}})
        create_resources("old", dynamodb, s3, template)
        indexes = dynamodb.describe_table(TableName="old-TasksTable")["Table"]["GlobalSecondaryIndexes"]
        assert [i["IndexName"] for i in indexes] == ["active-tasks", "partial-tasks"]
        found = dynamodb.query(TableName="old-TasksTable", IndexName="active-tasks",
                               KeyConditionExpression="active = :a", ExpressionAttributeValues={":a": {"S": "1"}})
        assert [item["id"]["S"] for item in found["Items"]] == ["t1"]
