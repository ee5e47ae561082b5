"""Server configuration shared by every tunix-rt service: one frozen dataclass, read from the
environment and overridden by command-line flags.

Environment variables (``<SERVICE>`` is the upper-cased service name, e.g. ``REGISTRY``)::

    TUNIX_RT_<SERVICE>_HOST          host      (falls back to TUNIX_RT_HOST)
    TUNIX_RT_<SERVICE>_PORT          port      (per service only: three services share a host)
    TUNIX_RT_<SERVICE>_METRICS_PORT  metrics_port; "off" / "" disables (per service only)
    TUNIX_RT_<SERVICE>_METRICS_HOST  metrics_host (falls back to TUNIX_RT_METRICS_HOST)
    TUNIX_RT_METRICS_AUTH            metrics_auth: 1 / true / on requires the token on /metrics
    TUNIX_RT_AUTH_TOKEN              auth_token; unset or "" disables auth
    TUNIX_RT_TLS_CERT                tls_cert_file (PEM)
    TUNIX_RT_TLS_KEY                 tls_key_file (PEM)
    TUNIX_RT_TLS_CA                  tls_ca_file (PEM roots trusted when dialling another service)
    TUNIX_RT_MAX_MESSAGE_BYTES       max_message_bytes
    TUNIX_RT_GRACE_SECONDS           grace_seconds
    TUNIX_RT_LOG_FORMAT              log_format: json | text
    TUNIX_RT_LOG_LEVEL               log_level: DEBUG | INFO | WARNING | ERROR | CRITICAL

Precedence: explicit overrides (flags) > environment > defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

MIB = 1024 * 1024

# Well-known ports, so `tunix-rt serve registry` and a client agree without any flags. Services
# with other names (tests, tools) default to 0, an ephemeral port.
DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {"registry": 50051, "training": 50052, "inference": 50053}
)

_ENV_PREFIX = "TUNIX_RT"
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DISABLED = frozenset({"", "off", "none", "disabled"})
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})


class ConfigError(ValueError):
    """A configuration value is missing, malformed or inconsistent; the message names it."""


@dataclass(frozen=True)
class ServerConfig:
    """How one tunix-rt gRPC server listens, authenticates, logs and shuts down."""

    # Interface to bind the gRPC (and metrics) listener on. Loopback by default so a developer's
    # server is not exposed by accident; set "0.0.0.0" or "::" to serve other hosts.
    host: str = "127.0.0.1"
    # gRPC port; 0 asks the OS for a free one (tests), and RunningServer.port reports it.
    port: int = 0
    # Prometheus HTTP port: None disables the endpoint, 0 picks a free port.
    metrics_port: int | None = None
    # Interface of the Prometheus port. None: `host`, except loopback when a token is set and
    # metrics_auth is off, so setting a token never leaves an unauthenticated port where the gRPC
    # one is reachable (see `metrics_bind_host`).
    metrics_host: str | None = None
    # Whether /metrics, too, needs `Authorization: Bearer <auth_token>` (Prometheus sends it with
    # a scrape config's `authorization: {credentials: ...}`); requires auth_token.
    metrics_auth: bool = False
    # Bearer token every RPC but health must carry (`authorization: Bearer <token>`); None = no
    # auth. Kept out of repr so it never reaches a log line.
    auth_token: str | None = field(default=None, repr=False)
    # PEM certificate chain and private key; both set = TLS, both None = plaintext.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # PEM roots that sign the other tunix-rt services' certificates: set, this service dials them
    # over TLS (common.outgoing), sending `auth_token` as its own bearer token. The same variable
    # as the CLI's --tls-ca, so a service and the CLI in one shell trust the same certificates.
    tls_ca_file: str | None = None
    # Largest single message sent or received, in bytes. gRPC's default receive limit (4 MiB) is
    # too small for a page of long reasoning traces or a batch generate response, but bulk data
    # (datasets, artifacts, checkpoints) travels as streams of chunks, so no single message needs
    # to be huge; 64 MiB bounds the memory one bad or malicious message can pin.
    max_message_bytes: int = 64 * MIB
    # Seconds in-flight RPCs get to finish after SIGTERM before they are cancelled. Well under
    # Kubernetes' default 30 s terminationGracePeriod, leaving time for on_shutdown hooks.
    grace_seconds: float = 10.0
    # "json": one JSON object per line, for log shippers; "text": for a terminal.
    log_format: LogFormat = "json"
    # Root log level name.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        _check_type("host", self.host, str)
        if not self.host:
            raise ConfigError("host must not be empty")
        _check_port("port", self.port)
        if self.metrics_port is not None:
            _check_port("metrics_port", self.metrics_port)
        if self.metrics_host is not None:
            _check_type("metrics_host", self.metrics_host, str)
            if not self.metrics_host:
                raise ConfigError("metrics_host must not be empty (None follows host)")
        if not isinstance(self.metrics_auth, bool):
            raise ConfigError(f"metrics_auth must be bool, got {self.metrics_auth!r}")
        if self.auth_token is not None:
            _check_type("auth_token", self.auth_token, str)
            if not self.auth_token or any(c.isspace() for c in self.auth_token):
                raise ConfigError(
                    "auth_token must be non-empty without whitespace (None disables auth)"
                )
        if self.metrics_auth and self.auth_token is None:
            raise ConfigError(
                "metrics_auth needs auth_token (TUNIX_RT_METRICS_AUTH without TUNIX_RT_AUTH_TOKEN)"
            )
        for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
            value = getattr(self, name)
            if value is not None:
                _check_type(name, value, str)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(
                "TLS needs both tls_cert_file and tls_key_file (TUNIX_RT_TLS_CERT and "
                "TUNIX_RT_TLS_KEY), or neither for plaintext"
            )
        _check_type("max_message_bytes", self.max_message_bytes, int)
        if self.max_message_bytes <= 0:
            raise ConfigError(f"max_message_bytes must be positive, got {self.max_message_bytes}")
        if isinstance(self.grace_seconds, bool) or not isinstance(self.grace_seconds, int | float):
            raise ConfigError(f"grace_seconds must be a number, got {self.grace_seconds!r}")
        if self.grace_seconds < 0:
            raise ConfigError(f"grace_seconds must be >= 0, got {self.grace_seconds}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {LOG_FORMATS}, got {self.log_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {LOG_LEVELS}, got {self.log_level!r}")

    @property
    def tls_enabled(self) -> bool:
        """Whether the gRPC port serves TLS."""
        return self.tls_cert_file is not None

    @property
    def auth_enabled(self) -> bool:
        """Whether RPCs (other than health) need the bearer token."""
        return self.auth_token is not None

    @property
    def metrics_bind_host(self) -> str:
        """The interface the Prometheus port listens on (`metrics_host` says how it is chosen)."""
        if self.metrics_host is not None:
            return self.metrics_host
        if self.auth_token is not None and not self.metrics_auth:
            return "::1" if self.host in ("::1", "[::1]") else "127.0.0.1"
        return self.host

    @classmethod
    def from_env(
        cls, service: str, *, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServerConfig:
        """Same as the module-level `from_env`."""
        return from_env(service, env=env, **overrides)


def from_env(
    service: str, *, env: Mapping[str, str] | None = None, **overrides: Any
) -> ServerConfig:
    """Build the config of `service` from `env` (default `os.environ`), then apply `overrides`.

    Overrides are ServerConfig field names, typically command-line flags; a None value means "flag
    not given" and is ignored (to disable metrics explicitly use
    `dataclasses.replace(config, metrics_port=None)`). An unknown name or a malformed value raises
    ConfigError.
    """
    if not _SERVICE_NAME.match(service):
        raise ConfigError(f"service name must match {_SERVICE_NAME.pattern}, got {service!r}")
    environ: Mapping[str, str] = os.environ if env is None else env
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown server config option(s): {', '.join(unknown)}")

    own = f"{_ENV_PREFIX}_{service.upper()}_"
    shared = f"{_ENV_PREFIX}_"
    values: dict[str, Any] = {"port": DEFAULT_PORTS.get(service, 0)}
    # field -> (environment variable names, most specific first; parser)
    sources: dict[str, tuple[tuple[str, ...], Callable[[str, str], Any]]] = {
        "host": ((own + "HOST", shared + "HOST"), _parse_str),
        "port": ((own + "PORT",), _parse_int),
        "metrics_port": ((own + "METRICS_PORT",), _parse_optional_int),
        "metrics_host": ((own + "METRICS_HOST", shared + "METRICS_HOST"), _parse_optional_str),
        "metrics_auth": ((shared + "METRICS_AUTH",), _parse_bool),
        "auth_token": ((shared + "AUTH_TOKEN",), _parse_optional_str),
        "tls_cert_file": ((shared + "TLS_CERT",), _parse_optional_str),
        "tls_key_file": ((shared + "TLS_KEY",), _parse_optional_str),
        "tls_ca_file": ((shared + "TLS_CA",), _parse_optional_str),
        "max_message_bytes": ((shared + "MAX_MESSAGE_BYTES",), _parse_int),
        "grace_seconds": ((shared + "GRACE_SECONDS",), _parse_float),
        "log_format": ((shared + "LOG_FORMAT",), _parse_lower),
        "log_level": ((shared + "LOG_LEVEL",), _parse_upper),
    }
    for name, (variables, parse) in sources.items():
        for variable in variables:
            if variable in environ:
                values[name] = parse(variable, environ[variable])
                break
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    return ServerConfig(**values)


def _check_type(name: str, value: object, kind: type) -> None:
    # bool is an int subclass; True is never a sensible port or size.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")


def _check_port(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be int, got {value!r}")
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be in 0..65535, got {value}")


def _parse_str(variable: str, raw: str) -> str:
    return raw.strip()


def _parse_optional_str(variable: str, raw: str) -> str | None:
    # An empty variable counts as unset: `export TUNIX_RT_AUTH_TOKEN=` is how shells unset.
    return raw.strip() or None


def _parse_lower(variable: str, raw: str) -> str:
    return raw.strip().lower()


def _parse_upper(variable: str, raw: str) -> str:
    return raw.strip().upper()


def _parse_int(variable: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not an integer") from None


def _parse_optional_int(variable: str, raw: str) -> int | None:
    if raw.strip().lower() in _DISABLED:
        return None
    return _parse_int(variable, raw)


def _parse_bool(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{variable}={raw!r} is not a boolean (1/0, true/false, on/off, yes/no)")


def _parse_float(variable: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a number") from None
