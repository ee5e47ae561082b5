"""Model references → what they point at now, through the registry.

A reference is `name@alias`, `name/version`, `name` (the latest version),
`models/{model}/versions/{version}` or an absolute local checkpoint directory. Versioned forms
never change what they name, so their resolution is kept; `name@alias` and `name` are asked again
after `MOVABLE_TTL_S`, so moving an alias is seen within a second without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunix_rt.common.errors import InvalidArgument, NotFound
from tunix_rt.common.outgoing import registry_call
from tunix_rt.v1 import model_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb

# How long a movable reference's answer is reused: a burst of requests costs one registry call,
# and an alias move is picked up within this long.
MOVABLE_TTL_S = 1.0
# Fixed references remembered at most (each answer is a small proto).
MAX_CACHED = 1024
REGISTRY_DEADLINE_S = 30.0
_VERSION_PREFIX = "models/"


@dataclass(frozen=True)
class Target:
    """What a reference names: a registered version or a local checkpoint directory."""

    # The model store's key: the version name, or the directory's absolute path.
    key: str
    # `models/{model}/versions/{version}`; empty for a checkpoint directory.
    model_version: str = ""
    # The absolute directory; empty for a registered version.
    checkpoint_dir: str = ""
    # `artifacts/{sha256}` holding the weights; empty for a checkpoint directory.
    artifact: str = ""


def is_fixed(reference: str) -> bool:
    """Whether `reference` always names the same version (so its answer can be kept)."""
    if reference.startswith("/") or reference.startswith(_VERSION_PREFIX):
        return True
    return "@" not in reference and "/" in reference


class Resolver:
    """Resolves references through a synchronous RegistryService stub; thread-safe."""

    def __init__(self, registry_stub: Any, ttl_s: float = MOVABLE_TTL_S) -> None:
        self._stub = registry_stub
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        # reference -> (when resolved, target, version proto)
        self._cache: OrderedDict[str, tuple[float, Target, model_pb2.ModelVersion | None]] = (
            OrderedDict()
        )
        # reference -> the answer being asked for: a burst of concurrent requests for the same
        # reference (16 streams after the TTL ran out) waits on one registry call.
        self._asking: dict[str, Future[tuple[Target, model_pb2.ModelVersion | None]]] = {}

    def resolve(self, reference: str) -> tuple[Target, model_pb2.ModelVersion | None]:
        """The target of `reference` now, with its ModelVersion (None for a directory).
        NotFound for an unknown model, version or alias or a missing directory."""
        text = reference.strip()
        if not text:
            raise InvalidArgument.field("model", "must not be empty")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None and (is_fixed(text) or now - hit[0] < self._ttl_s):
                self._cache.move_to_end(text)
                return hit[1], hit[2]
            asking = self._asking.get(text)
            if asking is None:
                mine: Future[tuple[Target, model_pb2.ModelVersion | None]] = Future()
                self._asking[text] = mine
        if asking is not None:
            return asking.result()  # raises what the asking call raised
        try:
            answer = self._ask(text)
        except BaseException as exc:
            with self._lock:
                del self._asking[text]
            mine.set_exception(exc)
            raise
        with self._lock:
            del self._asking[text]
            self._cache[text] = (now, *answer)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        mine.set_result(answer)
        return answer

    def _ask(self, text: str) -> tuple[Target, model_pb2.ModelVersion | None]:
        if text.startswith("/"):
            return self._directory(text), None
        version = self._registered(text)
        return Target(
            key=version.name, model_version=version.name, artifact=version.artifact
        ), version

    def _directory(self, text: str) -> Target:
        path = Path(text).resolve()
        if not (path / "config.json").is_file():
            raise NotFound(
                "checkpoint directory", text, f"no model directory (config.json) at {text!r}"
            )
        return Target(key=str(path), checkpoint_dir=str(path))

    def _registered(self, text: str) -> model_pb2.ModelVersion:
        response = registry_call(
            lambda: self._stub.ResolveModelVersion(
                rpb.ResolveModelVersionRequest(reference=text), timeout=REGISTRY_DEADLINE_S
            ),
            text,
            "model",
            "model",
        )
        version: model_pb2.ModelVersion = response.model_version
        return version
