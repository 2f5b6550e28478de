"""What the deployed API Gateway is, read from the same files the deployment uses.

- Routes and binary media types come from the Chalice app (they become the
  swagger `chalice package` writes).
- Service integrations (the `upload/` route that writes straight to S3), their
  REQUEST authorizer, and the gateway responses come from infra/resources.json,
  the template merged into the deployed API.
- Function timeouts, memory and environment come from .chalice/config.json.

The local gateway (gateway.py) asks this module how AWS would answer; nothing
here is deployed.
"""
from __future__ import annotations

import fnmatch
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / ".chalice" / "config.json"
STAGE = "v1"
LOCAL_CHALICE_STAGE = "local"
ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "local"

# API Gateway's default status and message for the gateway responses the local
# gateway can produce (AWS's "Gateway response types" table).
_DEFAULTS = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "ACCESS_DENIED": (403, "User is not authorized to access this resource with an explicit deny"),
    "UNAUTHORIZED": (401, "Unauthorized"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None),
    "AUTHORIZER_FAILURE": (500, None),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "INTEGRATION_FAILURE": (504, None),
    "DEFAULT_5XX": (502, "Internal server error"),
}
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)|\$\{context\.([A-Za-z0-9_.]+)\}")


def content_type_matches(media_type: str, patterns: list[str]) -> bool:
    """API Gateway's binary media type match: exact, or a `type/*` wildcard; `*/*` matches
    every type, a missing one too (API Gateway then takes the payload as binary)."""
    media_type = media_type.split(";")[0].strip().lower()
    if not media_type:
        return any(p.strip() == "*/*" for p in patterns)
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*/*" or pattern == media_type:
            return True
        if pattern.endswith("/*") and media_type.split("/")[0] == pattern[:-2]:
            return True
    return False


def first_accept_type(accept: str | None) -> str:
    return (accept or "").split(",")[0].split(";")[0].strip().lower()


@dataclass
class GatewayResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


@dataclass
class Integration:
    """A non-Lambda (AWS service) integration of one route and method."""
    resource: str
    method: str
    service: str                       # "s3"
    bucket_ref: str                    # the bucket's logical id
    key_template: str                  # e.g. incoming/{task}/{received}/{object}
    parameters: dict[str, str]         # integration.request.* -> source expression
    responses: dict[str, dict]         # selection pattern (or "default") -> statusCode, templates
    authorizer: str | None = None      # the authorizer's Lambda function name


@dataclass
class FunctionSettings:
    timeout: float
    memory_mb: int
    environment: dict[str, str] = field(default_factory=dict)


class ApiDefinition:
    """The deployed API, as the local gateway needs it."""

    def __init__(self, app, template: dict | None = None, config: dict | None = None):
        from .resources import load_template

        self.app = app
        self.template = template if template is not None else load_template()
        self.config = config if config is not None else json.loads(CONFIG_FILE.read_text())
        rest_api = self.template.get("Resources", {}).get("RestAPI", {}).get("Properties", {})
        self.gateway_responses: dict[str, dict] = rest_api.get("GatewayResponses", {})
        body = rest_api.get("DefinitionBody", {})
        self.binary_types: list[str] = list(app.api.binary_types) + list(
            body.get("x-amazon-apigateway-binary-media-types", []))
        self.integrations = self._integrations(body)

    # ------------------------------------------------------------------ functions
    def function_settings(self, function: str) -> FunctionSettings:
        from chalice.config import Config

        config = Config(chalice_stage=LOCAL_CHALICE_STAGE, function_name=function, config_from_disk=self.config)
        return FunctionSettings(timeout=float(config.lambda_timeout or 60),
                                memory_mb=int(config.lambda_memory_size or 128),
                                environment=dict(config.environment_variables or {}))

    def _function_for(self, logical_id: str) -> str | None:
        from chalice.utils import to_cfn_resource_name

        for name in self.app.handler_map:
            if to_cfn_resource_name(name) == logical_id:
                return name
        return None

    # ------------------------------------------------------------------ integrations
    def _integrations(self, body: dict) -> dict[tuple[str, str], Integration]:
        authorizers = {}
        for name, scheme in (body.get("securityDefinitions") or {}).items():
            spec = scheme.get("x-amazon-apigateway-authorizer") or {}
            found = re.search(r"\$\{(\w+)\.Arn\}", _sub_text(spec.get("authorizerUri")))
            if spec.get("type") == "request" and found:
                authorizers[name] = self._function_for(found.group(1))
        found_integrations = {}
        for path, methods in (body.get("paths") or {}).items():
            for method, operation in methods.items():
                spec = operation.get("x-amazon-apigateway-integration") or {}
                uri = _sub_text(spec.get("uri"))
                match = re.search(r":s3:path/\$\{(\w+)\}/(.+)$", uri)
                if spec.get("type") != "aws" or not match:
                    continue
                security = [name for entry in operation.get("security") or [] for name in entry]
                found_integrations[(path.rstrip("/") or "/", method.upper())] = Integration(
                    resource=path, method=method.upper(), service="s3", bucket_ref=match.group(1),
                    key_template=match.group(2), parameters=dict(spec.get("requestParameters") or {}),
                    responses=dict(spec.get("responses") or {}),
                    authorizer=next((authorizers[s] for s in security if s in authorizers), None))
        return found_integrations

    def integration_for(self, resource: str, method: str) -> Integration | None:
        return self.integrations.get((resource.rstrip("/") or "/", method.upper()))

    def resource_templates(self) -> list[str]:
        return sorted(set(self.app.routes) | {i.resource for i in self.integrations.values()})

    # ------------------------------------------------------------------ gateway responses
    def gateway_response(self, kind: str, context: dict | None = None) -> GatewayResponse:
        """The answer API Gateway gives itself (no integration reached), with this API's
        customisations from the template's GatewayResponses, else AWS's defaults."""
        status, message = _DEFAULTS.get(kind, (500, None))
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        custom = self.gateway_responses.get(kind) or self.gateway_responses.get(family) or {}
        status = int(custom.get("StatusCode") or status)
        template = (custom.get("ResponseTemplates") or {}).get("application/json") \
            or '{"message":$context.error.messageString}'
        values = {"error.message": message if message is not None else "",
                  "error.messageString": json.dumps(message), "error.responseType": kind}
        for key, value in (context or {}).items():
            values[key] = value
        headers = [("Content-Type", "application/json")]
        headers += [(k.split(".")[-1], v.strip("'")) for k, v in (custom.get("ResponseParameters") or {}).items()
                    if k.startswith("gatewayresponse.header.")]
        return GatewayResponse(status, render(template, values).encode(), headers)


def render(template: str, values: dict[str, Any]) -> str:
    """Substitute `$context.x` variables as API Gateway's templates do (no VTL logic)."""
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        value = values.get(name, "")
        return value if isinstance(value, str) else json.dumps(value)

    return _CONTEXT_VARIABLE.sub(replace, template)


def _sub_text(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
        if isinstance(value, list):
            value = value[0]
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------- authorizers

def method_arn(method: str, path: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{method}{path}"


def authorizer_event(request: dict) -> dict:
    """The event of a REQUEST authorizer (API Gateway's documented shape)."""
    return {"type": "REQUEST", "methodArn": method_arn(request["httpMethod"], request["path"]),
            **{k: request[k] for k in ("resource", "path", "httpMethod", "headers", "multiValueHeaders",
                                         "queryStringParameters", "multiValueQueryStringParameters",
                                         "pathParameters", "stageVariables", "requestContext")}}


def policy_allows(result: Any, arn: str) -> bool:
    """An explicit Allow for `arn` and no Deny (IAM's evaluation, for execute-api:Invoke)."""
    if not isinstance(result, dict) or "principalId" not in result:
        raise ValueError("authorizer output has no principalId")
    statements = (result.get("policyDocument") or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action") or []
        resources = statement.get("Resource") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def authorizer_context(result: dict) -> dict[str, str]:
    """`$context.authorizer.*`: API Gateway hands the context on as strings."""
    values = {"authorizer.principalId": str(result.get("principalId", ""))}
    for key, value in (result.get("context") or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        values[f"authorizer.{key}"] = str(value)
    return values


def request_time_epoch() -> str:
    return str(int(time.time() * 1000))

