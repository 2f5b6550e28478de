"""Creating the first superuser of a deployed stack (tables found through CloudFormation)."""
from __future__ import annotations

import json

from moto import mock_aws

from aloft_local import admin
from aloft_local.resources import load_template
from chalicelib import config


def test_create_superuser_against_a_cloudformation_stack(monkeypatch):
    import boto3

    resources = load_template()["Resources"]
    template = {"Resources": {name: resources[name] for name in ("UsersTable", "CountersTable")}}
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName="aloft", TemplateBody=json.dumps(template))
        monkeypatch.setenv("ALOFT_ADMIN_PASSWORD", "s3cret-pw")
        for name in ("ALOFT_USERS_TABLE", "ALOFT_COUNTERS_TABLE", "ALOFT_STAGE"):
            monkeypatch.delenv(name, raising=False)
        config.reset()
        try:
            assert admin.main(["--stack", "aloft", "--username", "root"]) == 0
            config.reset()
            from chalicelib.auth import login

            user = login("root", "s3cret-pw")
            assert user is not None and user["is_superuser"] is True and user["id"] == 1
            assert admin.main(["--stack", "aloft", "--username", "root"]) == 0  # left alone
            assert login("root", "s3cret-pw")["id"] == 1
        finally:
            config.reset()
