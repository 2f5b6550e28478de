"""Create Aloft's tables, bucket and queues from infra/resources.json (the deployment's own file).

The CloudFormation template maps each setting (`ALOFT_USERS_TABLE`, ...) to a
resource through `Globals.Function.Environment.Variables`; this module reads that
mapping, names each resource `<prefix>-<logical id>` locally, creates what is
missing, and returns the environment the app needs to find them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

RESOURCES_FILE = Path(__file__).resolve().parent.parent / "infra" / "resources.json"


def load_template() -> dict:
    return json.loads(RESOURCES_FILE.read_text())


def _bucket_name(prefix: str, logical_id: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{prefix}-{logical_id}".lower())[:63]


def resource_environment(prefix: str, template: dict | None = None) -> dict[str, str]:
    """Setting name -> local resource name, for every table and bucket the app uses."""
    template = template or load_template()
    resources = template["Resources"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    env = {}
    for setting, value in variables.items():
        logical_id = value.get("Ref") if isinstance(value, dict) else None
        kind = resources.get(logical_id, {}).get("Type")
        if kind == "AWS::DynamoDB::Table":
            env[setting] = f"{prefix}-{logical_id}"
        elif kind == "AWS::S3::Bucket":
            env[setting] = _bucket_name(prefix, logical_id)
        elif kind == "AWS::SQS::Queue":
            env[setting] = f"{prefix}-{logical_id}"
    return env


def _table_request(name: str, properties: dict) -> dict:
    request = {key: properties[key] for key in
               ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")
               if key in properties}
    request["TableName"] = name
    return request


def _s3_cors(cloudformation_cors: dict) -> dict:
    """CloudFormation's CorsConfiguration spelled as the S3 API wants it."""
    renames = {"MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders", "Id": "ID"}
    return {"CORSRules": [{renames.get(k, k): v for k, v in rule.items()}
                          for rule in cloudformation_cors["CorsRules"]]}


def create_queues(prefix: str, sqs, template: dict | None = None) -> None:
    """Create the template's queues (dead-letter queues first, as their ARNs are needed).
    ALOFT_QUEUE_VISIBILITY_SECONDS overrides the visibility timeout: a local knob, so that
    a test can watch a message come back after a crash in seconds rather than minutes."""
    import os

    template = template or load_template()
    queues = {lid: r.get("Properties", {}) for lid, r in template["Resources"].items()
              if r.get("Type") == "AWS::SQS::Queue"}
    arns: dict[str, str] = {}

    def create(logical_id: str) -> None:
        if logical_id in arns:
            return
        properties = queues[logical_id]
        attributes = {k: str(properties[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                                     "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
                      if k in properties}
        if "VisibilityTimeout" in attributes and os.environ.get("ALOFT_QUEUE_VISIBILITY_SECONDS"):
            attributes["VisibilityTimeout"] = os.environ["ALOFT_QUEUE_VISIBILITY_SECONDS"]
        redrive = properties.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            create(target)
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arns[target],
                                                      "maxReceiveCount": int(redrive["maxReceiveCount"])})
        url = sqs.create_queue(QueueName=f"{prefix}-{logical_id}", Attributes=attributes)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # a queue kept from before
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    for logical_id in queues:
        create(logical_id)


def create_resources(prefix: str, dynamodb, s3, template: dict | None = None, sqs=None,
                     seed_presets: bool = True) -> dict[str, str]:
    """Create missing tables, buckets and queues; returns resource_environment(prefix).

    `seed_presets=False` leaves the system presets to their first use, as in a deployment
    (chalicelib/presets.py); the test fixtures do that, `make run` seeds them at start."""
    template = template or load_template()
    if sqs is None:
        from chalicelib import aws

        sqs = aws.client("sqs")
    create_queues(prefix, sqs, template)
    env = resource_environment(prefix, template)
    by_name = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::DynamoDB::Table":
            by_name[f"{prefix}-{logical_id}"] = ("table", resource["Properties"])
        elif resource.get("Type") == "AWS::S3::Bucket":
            by_name[_bucket_name(prefix, logical_id)] = ("bucket", resource.get("Properties", {}))
    existing_tables = set(dynamodb.list_tables().get("TableNames", []))
    existing_buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for name in env.values():
        if name not in by_name:
            continue  # a queue: created above
        kind, properties = by_name[name]
        if kind == "table" and name not in existing_tables:
            try:
                dynamodb.create_table(**_table_request(name, properties))
            except dynamodb.exceptions.ResourceInUseException:
                pass  # another stack created it first
        elif kind == "bucket" and name not in existing_buckets:
            try:
                s3.create_bucket(Bucket=name)
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                pass
            if "CorsConfiguration" in properties:
                s3.put_bucket_cors(Bucket=name, CORSConfiguration=_s3_cors(properties["CorsConfiguration"]))
        elif kind == "table":
            _add_missing_indexes(dynamodb, name, properties)
    for name in env.values():
        if name in by_name and by_name[name][0] == "table":
            dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    if seed_presets and "ALOFT_PRESETS_TABLE" in env:
        _seed_system_presets(env)
    return env


def _seed_system_presets(env: dict[str, str]) -> None:
    """The system presets, there from the start as WebODM's boot makes them (a deployment
    seeds them on first use: chalicelib/presets.py). Idempotent: a kept table is left as it is."""
    import os

    from chalicelib import config
    from chalicelib.presets import ensure_system_presets

    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    config.reset()
    try:
        ensure_system_presets()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reset()


def _add_missing_indexes(dynamodb, name: str, properties: dict) -> None:
    """A table kept from an earlier run gets the global secondary indexes the template
    added since, as a CloudFormation update would give the deployed table."""
    wanted = {index["IndexName"]: index for index in properties.get("GlobalSecondaryIndexes", [])}
    present = {index["IndexName"] for index in
               dynamodb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])}
    for index_name, index in wanted.items():
        if index_name in present:
            continue
        key_names = {part["AttributeName"] for part in index["KeySchema"]}
        dynamodb.update_table(
            TableName=name,
            AttributeDefinitions=[a for a in properties["AttributeDefinitions"] if a["AttributeName"] in key_names],
            GlobalSecondaryIndexUpdates=[{"Create": {k: v for k, v in index.items()
                                                     if k in ("IndexName", "KeySchema", "Projection")}}])
