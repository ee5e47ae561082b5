"""ServerConfig: defaults, environment, flag overrides and validation."""

from __future__ import annotations

import dataclasses

import pytest

from tunix_rt.common.config import ConfigError, ServerConfig, from_env


def test_defaults_without_environment() -> None:
    config = from_env("registry", env={})
    assert config == ServerConfig(port=50051)
    assert config.host == "127.0.0.1"
    assert config.metrics_port is None
    assert not config.auth_enabled
    assert not config.tls_enabled
    assert config.max_message_bytes == 64 * 1024 * 1024
    assert from_env("inference", env={}).port == 50053
    assert from_env("some_tool", env={}).port == 0


def test_environment_is_read_per_service_and_shared() -> None:
    env = {
        "TUNIX_RT_TRAINING_HOST": "0.0.0.0",
        "TUNIX_RT_TRAINING_PORT": "6000",
        "TUNIX_RT_TRAINING_METRICS_PORT": "9100",
        "TUNIX_RT_REGISTRY_PORT": "7000",  # another service's: ignored
        "TUNIX_RT_HOST": "10.0.0.1",  # shared, but the service's own host wins
        "TUNIX_RT_AUTH_TOKEN": "tok",
        "TUNIX_RT_TLS_CERT": "/etc/tls/cert.pem",
        "TUNIX_RT_TLS_KEY": "/etc/tls/key.pem",
        "TUNIX_RT_MAX_MESSAGE_BYTES": "1048576",
        "TUNIX_RT_GRACE_SECONDS": "2.5",
        "TUNIX_RT_LOG_FORMAT": "TEXT",
        "TUNIX_RT_LOG_LEVEL": "debug",
    }
    assert from_env("training", env=env) == ServerConfig(
        host="0.0.0.0",
        port=6000,
        metrics_port=9100,
        auth_token="tok",
        tls_cert_file="/etc/tls/cert.pem",
        tls_key_file="/etc/tls/key.pem",
        max_message_bytes=1048576,
        grace_seconds=2.5,
        log_format="text",
        log_level="DEBUG",
    )
    assert from_env("inference", env=env).host == "10.0.0.1"


def test_overrides_win_and_none_means_not_given() -> None:
    env = {"TUNIX_RT_REGISTRY_PORT": "7000", "TUNIX_RT_REGISTRY_METRICS_PORT": "9100"}
    config = from_env("registry", env=env, port=8000, metrics_port=None, log_level="WARNING")
    assert (config.port, config.metrics_port, config.log_level) == (8000, 9100, "WARNING")
    assert ServerConfig.from_env("registry", env=env, port=1) == dataclasses.replace(
        config, port=1, log_level="INFO"
    )


@pytest.mark.parametrize("raw", ["", "off", "OFF", "none", "disabled"])
def test_metrics_can_be_switched_off(raw: str) -> None:
    assert from_env("registry", env={"TUNIX_RT_REGISTRY_METRICS_PORT": raw}).metrics_port is None


def test_empty_token_variable_means_no_auth() -> None:
    assert from_env("registry", env={"TUNIX_RT_AUTH_TOKEN": ""}).auth_token is None


def test_token_is_not_in_repr() -> None:
    assert "hunter2" not in repr(ServerConfig(auth_token="hunter2"))


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"TUNIX_RT_REGISTRY_PORT": "abc"}, {}, "TUNIX_RT_REGISTRY_PORT='abc' is not an integer"),
        ({"TUNIX_RT_GRACE_SECONDS": "soon"}, {}, "TUNIX_RT_GRACE_SECONDS='soon' is not a number"),
        ({"TUNIX_RT_TLS_CERT": "/c.pem"}, {}, "TLS needs both tls_cert_file and tls_key_file"),
        ({}, {"tls_key_file": "/k.pem"}, "TLS needs both"),
        ({}, {"port": 70000}, "port must be in 0..65535"),
        ({}, {"port": "50051"}, "port must be int"),
        ({}, {"port": True}, "port must be int"),
        ({}, {"metrics_port": -1}, "metrics_port must be in 0..65535"),
        ({}, {"max_message_bytes": 0}, "max_message_bytes must be positive"),
        ({}, {"grace_seconds": -1.0}, "grace_seconds must be >= 0"),
        ({}, {"log_format": "xml"}, "log_format must be one of"),
        ({"TUNIX_RT_LOG_LEVEL": "loud"}, {}, "log_level must be one of"),
        ({}, {"auth_token": "two words"}, "auth_token must be non-empty without whitespace"),
        ({}, {"hots": "x"}, "unknown server config option(s): hots"),
        ({"TUNIX_RT_METRICS_AUTH": "1"}, {}, "metrics_auth needs auth_token"),
        ({"TUNIX_RT_METRICS_AUTH": "maybe"}, {}, "TUNIX_RT_METRICS_AUTH='maybe' is not a boolean"),
        ({}, {"metrics_auth": 1}, "metrics_auth must be bool"),
        ({}, {"metrics_host": ""}, "metrics_host must not be empty"),
    ],
)
def test_bad_values_are_clear_errors(
    env: dict[str, str], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env("registry", env=env, **overrides)
    assert message in str(caught.value)


def test_service_name_is_checked() -> None:
    with pytest.raises(ConfigError, match="service name"):
        from_env("Registry Service", env={})


def test_config_is_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_metrics_host_and_auth_from_environment() -> None:
    env = {
        "TUNIX_RT_AUTH_TOKEN": "tok",
        "TUNIX_RT_METRICS_HOST": "10.0.0.2",
        "TUNIX_RT_TRAINING_METRICS_HOST": "10.0.0.3",
        "TUNIX_RT_METRICS_AUTH": "on",
    }
    training = from_env("training", env=env)
    assert (training.metrics_host, training.metrics_auth) == ("10.0.0.3", True)
    assert from_env("registry", env=env).metrics_bind_host == "10.0.0.2"


@pytest.mark.parametrize(
    ("config", "bind_host"),
    [
        (ServerConfig(host="0.0.0.0"), "0.0.0.0"),
        (ServerConfig(host="0.0.0.0", auth_token="tok"), "127.0.0.1"),
        (ServerConfig(host="::", auth_token="tok"), "127.0.0.1"),
        (ServerConfig(host="::1", auth_token="tok"), "::1"),
        (ServerConfig(host="0.0.0.0", auth_token="tok", metrics_auth=True), "0.0.0.0"),
        (ServerConfig(host="0.0.0.0", auth_token="tok", metrics_host="10.0.0.2"), "10.0.0.2"),
    ],
)
def test_metrics_bind_host(config: ServerConfig, bind_host: str) -> None:
    # A token never leaves an unauthenticated port where the gRPC one listens.
    assert config.metrics_bind_host == bind_host
