"""Create a superuser: seeded by the local stack, and by hand against a deployed stack.

    python -m aloft_local.admin --stack aloft --username admin     # password asked on the terminal

Against AWS it finds the stack's users and counters tables through CloudFormation
(`--stack`), with the caller's own AWS credentials. An existing user is left alone.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys


def seed_superuser(username: str, password: str) -> bool:
    """Create the superuser unless the username exists; True when created."""
    from chalicelib.auth import hash_password
    from chalicelib.models import utcnow
    from chalicelib.store import users

    return users.ensure({
        "username": username, "email": "", "first_name": "", "last_name": "",
        "is_superuser": True, "is_active": True, "date_joined": utcnow(),
        "password": hash_password(password)})


def _point_at_stack(stack: str) -> None:
    import boto3

    cloudformation = boto3.client("cloudformation")
    for setting, logical_id in (("ALOFT_USERS_TABLE", "UsersTable"), ("ALOFT_COUNTERS_TABLE", "CountersTable")):
        resource = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
        os.environ[setting] = resource["StackResourceDetail"]["PhysicalResourceId"]
    os.environ.setdefault("ALOFT_STAGE", "prod")
    os.environ.setdefault("ALOFT_JWT_SECRET", "unused-for-user-creation-0123456789abcdef")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="CloudFormation stack name of the deployment")
    parser.add_argument("--username", required=True)
    args = parser.parse_args(argv)
    password = os.environ.get("ALOFT_ADMIN_PASSWORD") or getpass.getpass("Password: ")
    _point_at_stack(args.stack)
    created = seed_superuser(args.username, password)
    print(f"superuser {args.username!r} " + ("created" if created else "already exists (left unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
