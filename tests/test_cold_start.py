"""Cold start: `import app` opens no connection, builds no boto3 client and loads no heavy module.

Each check runs in a fresh interpreter, as a new Lambda container would, so nothing the test
session already imported can hide a module-level import.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

# boto3/botocore come from the Lambda runtime but cost ~100+ ms to import; the rest are only
# needed by some requests (tokens, multipart bodies) or by the poller (NodeODM over HTTP).
HEAVY = ("numpy", "rasterio", "rio_tiler", "rio_cogeo", "PIL", "pyproj", "morecantile", "numexpr",
         "chalicelib.rasters",  # raster routes import it inside the function, on their first call
         "boto3", "botocore", "jwt", "requests", "urllib3", "python_multipart", "multipart",
         "requests_toolbelt", "chalicelib.poller", "chalicelib.nodeodm", "chalicelib.openapi")

_PROBE = r"""
import importlib.util, json, socket, sys

attempts = []

def audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        attempts.append(f"{event} {args!r}"[:200])
        raise OSError("network access during import")

sys.addaudithook(audit)

def refuse(*args, **kwargs):
    attempts.append(f"socket {args!r}"[:200])
    raise OSError("network access during import")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse

# Every boto3/botocore client goes through botocore.session.Session.create_client: hook it
# the moment botocore.session is loaded, without loading botocore ourselves.
clients = []

class HookBotocoreSession:
    def find_spec(self, name, path=None, target=None):
        if name != "botocore.session":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        exec_module = spec.loader.exec_module

        def exec_and_hook(module):
            exec_module(module)
            create_client = module.Session.create_client

            def record(self, service_name, *args, **kwargs):
                clients.append(service_name)
                return create_client(self, service_name, *args, **kwargs)

            module.Session.create_client = record

        spec.loader.exec_module = exec_and_hook
        return spec

sys.meta_path.insert(0, HookBotocoreSession())

try:
    exec(STATEMENT)
except OSError as exc:
    attempts.append(f"raised {exc}")
print(json.dumps({"network": attempts, "clients": clients,
                  "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _probe(env_extra: dict[str, str], statement: str = "import app; assert app.app.routes") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_"))}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1", **env_extra})
    code = f"HEAVY = {HEAVY!r}\nSTATEMENT = {statement!r}\n{_PROBE}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_probe_sees_clients_connections_and_modules():
    """The probe itself works: a boto3 client, a connection and a heavy import are all caught."""
    result = _probe({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
                    "import boto3, jwt; boto3.client('dynamodb');"
                    "import socket; socket.create_connection(('127.0.0.1', 9))")
    assert result["clients"] == ["dynamodb"]
    assert result["network"] and result["network"][-1].startswith("raised")
    assert {"boto3", "botocore", "jwt"} <= set(result["loaded"])


def test_import_app_is_free_of_network_clients_and_heavy_modules():
    result = _probe({"ALOFT_STAGE": "local"})
    assert result == {"network": [], "clients": [], "loaded": []}


def test_import_in_a_deployed_function_reads_settings_only():
    """In Lambda (AWS_LAMBDA_FUNCTION_NAME set) app.py checks its settings at import; with the
    secret's ARN that is still no call: the secret is fetched on first use, once per container."""
    result = _probe({"ALOFT_STAGE": "prod", "AWS_LAMBDA_FUNCTION_NAME": "aloft-prod",
                     "ALOFT_JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"})
    assert result == {"network": [], "clients": [], "loaded": []}


def test_a_deployed_function_without_its_secret_fails_at_import():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOFT_", "AWS_"))}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "ALOFT_STAGE": "prod",
                "AWS_LAMBDA_FUNCTION_NAME": "aloft-prod"})
    done = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "ConfigError" in done.stderr
