"""`make package`'s output: the API, the tables, the bucket and an explicit IAM policy."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    """`chalice package`, built once per test run: the xdist workers share the output, and a
    lock keeps two of them from writing chalice's dependency cache (.chalice/deployments) at
    once, which a fresh clone (no cache yet) would otherwise race on."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, the same for every xdist worker
    out = shared / "package-build"
    with open(shared / "package-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "sam.json").exists():
            chalice = Path(sys.executable).with_name("chalice")
            env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
            subprocess.run([str(chalice), "package", "--merge-template", "infra/resources.json",
                            "--stage", "prod", str(out)], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=600)
    return out


def test_template_has_api_tables_bucket(packaged):
    template = json.loads((packaged / "sam.json").read_text())
    resources = template["Resources"]
    types = {name: r["Type"] for name, r in resources.items()}
    for table in ("UsersTable", "ProjectsTable", "TasksTable", "TaskOutputTable",
                  "ProcessingNodesTable", "CountersTable", "WorkTable", "PresetsTable", "SharesTable",
                  "GroupsTable", "ApiKeysTable", "WebhooksTable", "WebhookDeliveriesTable"):
        assert types[table] == "AWS::DynamoDB::Table"
        assert resources[table]["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert types["DataBucket"] == "AWS::S3::Bucket"
    assert types["RestAPI"] == "AWS::Serverless::Api" and types["APIHandler"] == "AWS::Serverless::Function"
    gsi = resources["TasksTable"]["Properties"]["GlobalSecondaryIndexes"][0]
    assert gsi["IndexName"] == "active-tasks"
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ALOFT_TASKS_TABLE"] == {"Ref": "TasksTable"}
    assert variables["ALOFT_BUCKET"] == {"Ref": "DataBucket"}
    bucket = resources["DataBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_iam_policy_is_explicit_and_scoped(packaged):
    template = json.loads((packaged / "sam.json").read_text())
    resources = template["Resources"]
    policy = resources["AloftDataAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in policy:
        assert statement["Resource"] != "*" and "*" not in statement["Action"]
    tables = next(s for s in policy if s["Sid"] == "Tables")
    assert {"Fn::GetAtt": ["TasksTable", "Arn"]} in tables["Resource"]
    for name, resource in resources.items():  # every table of the template, none forgotten
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert {"Fn::GetAtt": [name, "Arn"]} in tables["Resource"], name
    assert {"Fn::Sub": "${ApiKeysTable.Arn}/index/*"} in tables["Resource"]  # a user's keys: by-user
    assert {"Fn::Sub": "${WebhooksTable.Arn}/index/*"} in tables["Resource"]  # a user's or a scope's hooks
    assert {"Fn::Sub": "${WebhookDeliveriesTable.Arn}/index/*"} in tables["Resource"]  # due retries
    role = resources["ApiHandlerRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "AloftDataAccessPolicy"}]
    inline = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [a for s in inline for a in s["Action"]] == [
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def test_zip_holds_the_app_and_nothing_local(packaged):
    names = zipfile.ZipFile(packaged / "deployment.zip").namelist()
    assert "app.py" in names and "chalicelib/store/dynamo.py" in names
    assert "pydantic/__init__.py" in names and "jwt/__init__.py" in names
    assert not any(n.startswith(("tests/", "aloft_local/", "benchmarks/", "infra/")) for n in names)


# Lambda's quota on a function's code unzipped (layers included; Aloft has none): 250 MB.
LAMBDA_MAX_UNZIPPED_BYTES = 262_144_000
# Lambda's python3.11 runs on Amazon Linux 2: glibc 2.26.
LAMBDA_GLIBC = (2, 26)


def test_zip_unzips_under_lambdas_limit(packaged):
    """All four functions share build/deployment.zip: with the raster stack it must still
    unzip under Lambda's 250 MB (README, "Runtime and package size")."""
    infos = zipfile.ZipFile(packaged / "deployment.zip").infolist()
    unzipped = sum(info.file_size for info in infos)
    print(f"deployment.zip: {(packaged / 'deployment.zip').stat().st_size:,} bytes, "
          f"{unzipped:,} unzipped ({unzipped / LAMBDA_MAX_UNZIPPED_BYTES:.0%} of Lambda's limit)")
    assert unzipped < LAMBDA_MAX_UNZIPPED_BYTES
    names = {info.filename for info in infos}
    for module in ("rasterio/__init__.py", "rio_tiler/__init__.py", "rio_cogeo/__init__.py",
                   "PIL/__init__.py", "numpy/__init__.py", "morecantile/__init__.py",
                   "rasterio/gdal_data/gdalvrt.xsd", "rasterio/proj_data/proj.db"):
        assert module in names, module


def test_binary_wheels_are_for_python311_on_amazon_linux_2(packaged):
    """Every compiled dependency is a CPython 3.11 x86_64 wheel that needs no newer glibc
    than Amazon Linux 2's (a manylinux_2_28 wheel would fail to load on Lambda)."""
    archive = zipfile.ZipFile(packaged / "deployment.zip")
    binary = {}
    for name in archive.namelist():
        if not name.endswith(".dist-info/WHEEL"):
            continue
        tags = [line.split(":", 1)[1].strip() for line in archive.read(name).decode().splitlines()
                if line.startswith("Tag:")]
        if all(tag.endswith("-none-any") for tag in tags):
            continue
        glibc = []
        for tag in tags:
            python, abi, platform = tag.split("-")
            assert (python, abi) == ("cp311", "cp311") and platform.endswith("x86_64"), (name, tag)
            legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
            match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
            glibc.append((int(match[1]), int(match[2])) if match else legacy[platform.split("_x86")[0]])
        binary[name.split("-")[0]] = min(glibc)
    assert {"rasterio", "numpy", "pillow", "pyproj", "pydantic_core"} <= set(binary)
    assert binary["rasterio"] == (2, 17) and binary["numpy"] == (2, 17)
    assert all(needs <= LAMBDA_GLIBC for needs in binary.values()), binary


def test_packaged_raster_stack_needs_no_gdal_settings(packaged, tmp_path):
    """The zip's own rasterio, rio-tiler, rio-cogeo and Pillow, alone on sys.path in a fresh
    interpreter with no GDAL_DATA/PROJ_DATA set (as deployed): GDAL and PROJ find the data
    shipped in the wheels, reproject UTM, convert to a COG and render a PNG tile."""
    root = tmp_path / "task"
    zipfile.ZipFile(packaged / "deployment.zip").extractall(root)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GDAL_", "PROJ_", "PROJ", "CPL_", "PYTHON", "AWS_"))}
    code = f"""
import sys
sys.path[:0] = [{str(root)!r}]
import numpy, rasterio, PIL
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.io import Reader

for module in (numpy, rasterio, PIL):
    assert module.__file__.startswith({str(root)!r}), module.__file__
profile = dict(driver="GTiff", width=512, height=512, count=3, dtype="uint8", crs="EPSG:32615",
               transform=from_origin(500000, 4650000, 0.1, 0.1))
data = numpy.zeros((3, 512, 512), "uint8")
data[0] = 200
src, cog = {str(tmp_path / "src.tif")!r}, {str(tmp_path / "cog.tif")!r}
with rasterio.open(src, "w", **profile) as dst:
    dst.write(data)
cog_translate(src, cog, cog_profiles.get("deflate"), quiet=True)
assert cog_validate(cog)[0]
west, south, east, north = transform_bounds("EPSG:32615", "EPSG:4326", 500000, 4649948.8, 500051.2, 4650000)
assert abs(west + 93) < 1e-9 and 42.0 < north < 42.01, (west, north)  # 15N: central meridian 93°W
with Reader(cog) as reader:
    tile = reader.tile(*reader.tms.tile((west + east) / 2, (south + north) / 2, 20))
png = tile.render(img_format="PNG")
assert png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
print(rasterio.__gdal_version__, rasterio.env.GDALDataFinder().search(), tile.data[0].max())
"""
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    gdal_version, gdal_data, red = done.stdout.split()
    assert gdal_data.startswith(str(root)) and red == "200"


def test_cfn_lint_passes(packaged):
    """cfn-lint (it expands the SAM transform itself) reports nothing, informational notes included."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([str(cfn_lint), "--regions", "us-east-1", "--include-checks", "I", "--",
                           str(packaged / "sam.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_poller_runs_every_minute_with_the_data_policy(packaged):
    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    poller = resources["Poller"]
    assert poller["Type"] == "AWS::Serverless::Function"
    assert poller["Properties"]["Handler"] == "app.poller"
    assert poller["Properties"]["Role"] == {"Fn::GetAtt": ["PollerRole", "Arn"]}
    events = poller["Properties"]["Events"].values()
    assert [e["Properties"]["Schedule"] for e in events if e["Type"] == "Schedule"] == ["rate(1 minute)"]
    role = resources["PollerRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "AloftDataAccessPolicy"}]
    inline = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [a for s in inline for a in s["Action"]] == [
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def test_bucket_is_private_encrypted_and_tls_only(packaged):
    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    bucket = resources["DataBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "AccessControl" not in bucket and "WebsiteConfiguration" not in bucket
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    policy = resources["DataBucketTlsOnlyPolicy"]
    assert policy["Type"] == "AWS::S3::BucketPolicy"
    assert policy["Properties"]["Bucket"] == {"Ref": "DataBucket"}
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::Sub": "${DataBucket.Arn}/*"} in statement["Resource"]
    # nothing in the template grants anyone else access to the bucket
    assert not [name for name, r in resources.items()
                if r["Type"] == "AWS::S3::BucketPolicy" and name != "DataBucketTlsOnlyPolicy"]


def test_data_outlives_the_stack_and_names_are_outputs(packaged):
    template = json.loads((packaged / "sam.json").read_text())
    resources = template["Resources"]
    stateful = [name for name, r in resources.items()
                if r["Type"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket")]
    assert len(stateful) == 14 and {"PresetsTable", "SharesTable", "GroupsTable", "ApiKeysTable", "WebhooksTable",
                                    "WebhookDeliveriesTable"} <= set(stateful)
    for name in stateful:
        assert resources[name]["DeletionPolicy"] == resources[name]["UpdateReplacePolicy"] == "Retain"
    outputs = template["Outputs"]
    assert outputs["UsersTableName"]["Value"] == {"Ref": "UsersTable"}
    assert outputs["CountersTableName"]["Value"] == {"Ref": "CountersTable"}
    assert outputs["WorkTableName"]["Value"] == {"Ref": "WorkTable"}
    assert outputs["PresetsTableName"]["Value"] == {"Ref": "PresetsTable"}
    assert outputs["SharesTableName"]["Value"] == {"Ref": "SharesTable"}
    assert outputs["ApiKeysTableName"]["Value"] == {"Ref": "ApiKeysTable"}
    assert outputs["WebhookDeliveriesTableName"]["Value"] == {"Ref": "WebhookDeliveriesTable"}
    deliveries = resources["WebhookDeliveriesTable"]["Properties"]
    assert deliveries["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    keys = resources["ApiKeysTable"]["Properties"]  # expired keys go 30 days after their expiry
    assert keys["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert outputs["JwtSecretArn"]["Value"] == {"Ref": "JwtSecret"}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]  # both functions
    assert variables["ALOFT_JWT_SECRET_ARN"] == {"Ref": "JwtSecret"}
    assert "EndpointURL" in outputs


def test_upload_route_is_an_s3_integration_behind_a_request_authorizer(packaged):
    """POST .../upload/ never reaches Lambda: API Gateway writes the body to S3 under
    incoming/<task id>/<epoch ms>/<request id> after the upload authorizer allowed it."""
    template = json.loads((packaged / "sam.json").read_text())
    resources = template["Resources"]
    body = resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert "multipart/form-data" in body["x-amazon-apigateway-binary-media-types"]
    post = body["paths"]["/api/projects/{project_id}/tasks/{task_id}/upload"]["post"]
    integration = post["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws" and integration["httpMethod"] == "PUT"
    assert integration["uri"]["Fn::Sub"].endswith(":s3:path/${DataBucket}/incoming/{task}/{received}/{object}")
    assert integration["requestParameters"]["integration.request.path.task"] == "context.authorizer.task_id"
    assert integration["requestParameters"]["integration.request.path.object"] == "context.requestId"
    assert integration["requestParameters"]["integration.request.path.received"] == "context.requestTimeEpoch"
    assert integration["credentials"] == {"Fn::GetAtt": ["UploadIntegrationRole", "Arn"]}
    assert post["security"] == [{"UploadAuthorizer": []}]
    authorizer = body["securityDefinitions"]["UploadAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request" and authorizer["authorizerResultTtlInSeconds"] == 0
    assert "${UploadAuthorizer.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]
    function = resources["UploadAuthorizer"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert function["Properties"]["Handler"] == "app.upload_authorizer"
    permission = resources["UploadAuthorizerInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    # Least privilege: the integration may only add objects under incoming/, the
    # authorizer only read the caller, the project, the caller's shares, the task and the JWT secret.
    role = resources["UploadIntegrationRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/incoming/*"}
    assert resources["UploadAuthorizerRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Ref": "UploadAuthorizerAccessPolicy"}]
    reads = resources["UploadAuthorizerAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(a for s in reads for a in s["Action"]) == [
        "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:GetItem", "dynamodb:GetItem", "dynamodb:Query",
        "dynamodb:UpdateItem", "secretsmanager:GetSecretValue"]
    shares = next(s for s in reads if s["Sid"] == "ReadShares")
    assert shares["Resource"] == [{"Fn::GetAtt": ["SharesTable", "Arn"]}]
    # an API key: its one item (read, and last_used_at written), and after a rename its owner by id
    keys = next(s for s in reads if s["Sid"] == "ApiKeys")
    assert keys["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert keys["Resource"] == [{"Fn::GetAtt": ["ApiKeysTable", "Arn"]}]
    renamed = next(s for s in reads if s["Sid"] == "FindRenamedKeyOwner")
    assert renamed["Action"] == ["dynamodb:Query"] and renamed["Resource"] == [
        {"Fn::Sub": "${UsersTable.Arn}/index/by-id"}]


def test_gateway_responses_keep_aws_bodies_for_the_limits(packaged):
    """The 413 / 502 / 504 the local gateway reproduces are API Gateway's defaults: the
    template customises only the unknown route (404) and the upload authorizer's answers."""
    responses = json.loads((packaged / "sam.json").read_text())["Resources"]["RestAPI"]["Properties"][
        "GatewayResponses"]
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "ACCESS_DENIED", "UNAUTHORIZED"}
    assert responses["UNAUTHORIZED"]["StatusCode"] == "404"
    assert "$context.authorizer.detail" in responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"]


def test_the_api_functions_timeout_is_the_one_in_limits(packaged):
    from chalicelib import limits

    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    assert resources["APIHandler"]["Properties"]["Timeout"] == limits.API_TIMEOUT_SECONDS
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert config["lambda_timeout"] == limits.API_TIMEOUT_SECONDS
    for stage in config["stages"].values():
        assert "lambda_timeout" not in stage  # no stage gives the API another timeout
        assert "api_handler" not in stage.get("lambda_functions", {})


def test_work_queue_worker_and_dead_letter_queue(packaged):
    """One message per task step: the queue (visibility ≥ the worker's timeout), its dead-letter
    queue after 5 receives, the worker's SQS event source, and the IAM to send and receive."""
    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    queue = resources["WorkQueue"]["Properties"]
    worker = resources["Worker"]["Properties"]
    assert queue["VisibilityTimeout"] >= worker["Timeout"] == 900
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 5}
    assert resources["WorkDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    (source,) = worker["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${WorkQueue.QueueName}"}
    assert source["Properties"]["BatchSize"] == 1
    assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 50}
    assert resources["WorkerRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Ref": "AloftDataAccessPolicy"}, {"Ref": "WorkerQueuePolicy"}]
    consume = resources["WorkerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert set(consume["Action"]) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                      "sqs:ChangeMessageVisibility"}
    assert consume["Resource"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    data = resources["AloftDataAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    send = next(s for s in data if s["Sid"] == "SendWork")
    assert send["Action"] == ["sqs:SendMessage", "sqs:GetQueueUrl"]
    template = json.loads((packaged / "sam.json").read_text())
    assert template["Globals"]["Function"]["Environment"]["Variables"]["ALOFT_WORK_QUEUE"] == {"Ref": "WorkQueue"}
    schedule = [e for e in resources["Poller"]["Properties"]["Events"].values() if e["Type"] == "Schedule"]
    assert [e["Properties"]["Schedule"] for e in schedule] == ["rate(1 minute)"]


def test_worker_has_room_to_convert_large_orthophotos(packaged):
    """The worker turns orthophotos and DEMs into COGs at completion: Lambda's largest /tmp
    (10 GB: rio-cogeo's intermediate file plus the COG), GDAL's temporary files there (the code
    folder is read-only), 3008 MB and the 15-minute timeout (README, "Runtime and package size")."""
    resources = json.loads((packaged / "sam.json").read_text())["Resources"]
    worker = resources["Worker"]["Properties"]
    assert worker["EphemeralStorage"] == {"Size": 10240}
    assert worker["MemorySize"] == 3008 and worker["Timeout"] == 900
    assert worker["Environment"]["Variables"]["CPL_TMPDIR"] == "/tmp"
    for name in ("APIHandler", "Poller", "UploadAuthorizer"):  # the others keep Lambda's 512 MB /tmp
        assert "EphemeralStorage" not in resources[name]["Properties"]
