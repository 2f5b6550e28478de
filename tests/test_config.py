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
