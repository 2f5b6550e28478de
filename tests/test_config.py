"""Deployment settings: a non-local stage must not start without a JWT secret."""
from __future__ import annotations

import pytest

from chalicelib import config


def test_non_local_stage_refuses_to_start_without_secret(monkeypatch):
    monkeypatch.setenv("ALOFT_STAGE", "prod")
    monkeypatch.delenv("ALOFT_JWT_SECRET", raising=False)
    monkeypatch.delenv("ALOFT_JWT_SECRET_ARN", raising=False)
    config.reset()
    try:
        with pytest.raises(config.ConfigError, match="ALOFT_JWT_SECRET"):
            config.settings()
        monkeypatch.setenv("ALOFT_JWT_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:x")
        config.reset()
        assert config.settings().jwt_secret_arn.endswith(":x")
    finally:
        config.reset()


def test_local_stage_has_a_shared_default_secret(monkeypatch):
    monkeypatch.setenv("ALOFT_STAGE", "local")
    monkeypatch.delenv("ALOFT_JWT_SECRET", raising=False)
    monkeypatch.delenv("ALOFT_JWT_SECRET_ARN", raising=False)
    config.reset()
    try:
        assert config.settings().jwt_secret == config.LOCAL_JWT_SECRET
    finally:
        config.reset()


def test_ttl_comes_from_environment(monkeypatch):
    monkeypatch.setenv("ALOFT_JWT_TTL_SECONDS", "60")
    config.reset()
    try:
        assert config.settings().jwt_ttl_seconds == 60
    finally:
        config.reset()


def test_deployed_function_without_secret_fails_at_start():
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALOFT_")}
    env.update(AWS_LAMBDA_FUNCTION_NAME="aloft-prod", ALOFT_STAGE="prod")
    failed = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "ALOFT_JWT_SECRET" in failed.stderr
    env["ALOFT_JWT_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:1:secret:jwt"
    assert subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env).returncode == 0


def test_presigned_uploads_switch(monkeypatch):
    config.reset()
    try:
        assert config.settings().presigned_uploads is True  # on by default
        for raw, expected in (("0", False), ("off", False), ("1", True), ("true", True)):
            monkeypatch.setenv("ALOFT_PRESIGNED_UPLOADS", raw)
            config.reset()
            assert config.settings().presigned_uploads is expected
        monkeypatch.setenv("ALOFT_PRESIGNED_UPLOADS", "maybe")
        config.reset()
        with pytest.raises(config.ConfigError, match="ALOFT_PRESIGNED_UPLOADS"):
            config.settings()
    finally:
        config.reset()
