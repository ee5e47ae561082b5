"""The models in memory: references → registry versions → local weights → engines, within a memory
budget, least recently used evicted first.

Use (thread-safe; call from worker threads, never on the event loop, since a load blocks)::

    store = ModelStore(registry_stub, data_dir, memory_budget_bytes=4 << 30)
    with store.acquire("reasoning-small@production") as served:
        ids = served.engine.encode_prompt(render_prompt(prompt, served.chat_template))
        for event in served.engine.generate(ids, sampling, cancelled):
            ...
        served.loaded_model  # a LoadedModel snapshot (proto)

`acquire(reference, *, backend="", precision="", pin=None)` resolves the reference now (an alias
is re-read from the registry at most once a second, so moving it changes what is served without a
restart), loads the model when it is not in memory, and returns a `Served` handle: `.engine` (the
`engines.base.Engine`), `.model_version` (`models/{m}/versions/{v}`, empty for a checkpoint
directory), `.checkpoint_dir`, `.chat_template`, `.context_length`, `.prompt_chars_limit` (see
`prompt_bound`), `.loaded_model`. While a handle is held (until `release()` or the end of the
`with`) the model is never evicted or closed; each handle counts as one request of the model.
Errors are domain errors: NotFound (unknown model, version, alias or directory),
ResourceExhausted (it cannot fit the budget), FailedPrecondition (the weights are not a loadable
model).

Loading: weights come from the registry's DownloadArtifact into `data_dir/artifacts/<sha256>/`
(`artifact_cache`); an adapter version (config.json `tunix_rt.adapter.base`) also fetches its
base. Before loading, `estimate_memory_bytes` says what the model will take; least recently used
models that are ready, unpinned and not in use are evicted until it fits; a model larger than the
whole budget, or one that cannot fit because the rest is pinned or busy, is RESOURCE_EXHAUSTED.
Concurrent acquires of a model that is loading wait for that one load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from tunix_rt.common.errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    TunixError,
)
from tunix_rt.inference import prompt_bound
from tunix_rt.inference.artifact_cache import ArtifactCache
from tunix_rt.inference.engines.base import Engine
from tunix_rt.inference.references import Resolver, Target
from tunix_rt.models.interchange.model_config import read_config
from tunix_rt.v1 import backend_pb2, inference_pb2, model_pb2

# The references a loaded model remembers (most recent first).
MAX_REFERENCES = 8

BACKENDS = {"jax": backend_pb2.BACKEND_JAX, "torch": backend_pb2.BACKEND_TORCH}
BACKEND_NAMES = {value: key for key, value in BACKENDS.items()}
PRECISIONS = {
    "float32": backend_pb2.PRECISION_FLOAT32,
    "mixed_bfloat16": backend_pb2.PRECISION_MIXED_BFLOAT16,
    "bfloat16": backend_pb2.PRECISION_BFLOAT16,
}
PRECISION_NAMES = {value: key for key, value in PRECISIONS.items()}
# What the engines' loader calls each precision: it computes in one dtype, so mixed bfloat16
# (float32 master weights are a training notion) serves as bfloat16.
LOADER_PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16", "bfloat16": "bfloat16"}
_ERROR_CODES = {
    "NOT_FOUND": code_pb2.NOT_FOUND,
    "INVALID_ARGUMENT": code_pb2.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": code_pb2.FAILED_PRECONDITION,
    "RESOURCE_EXHAUSTED": code_pb2.RESOURCE_EXHAUSTED,
    "UNAVAILABLE": code_pb2.UNAVAILABLE,
}

LoadEngine = Callable[..., Engine]
EstimateMemory = Callable[..., int]


def _real_loader() -> tuple[LoadEngine, EstimateMemory]:
    # Imported on first load: the engines pull in JAX / torch, which a server that only lists
    # models, and every test that never loads one, should not pay for.
    from tunix_rt.inference.engines import loader

    return loader.load_engine, loader.estimate_memory_bytes


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


@dataclass
class _Entry:
    """One model in memory (or loading, or failed)."""

    target: Target
    backend: str  # requested; "" = what the model was saved from
    precision: str  # requested; "" = automatic
    pinned: bool
    state: Any = inference_pb2.LOADED_MODEL_STATE_LOADING  # a LoadedModelState
    engine: Engine | None = None
    error: TunixError | None = None
    memory_bytes: int = 0  # the estimate while loading, the engine's figure once ready
    chat_template: str = "plain"
    architecture: str = ""
    chars_per_token: int | None = None  # prompt_bound.chars_per_token of its tokenizer
    references: list[str] = field(default_factory=list)
    in_use: int = 0
    request_count: int = 0
    load_time: float = 0.0
    load_duration: float = 0.0
    last_use: float = field(default_factory=time.time)
    ready: threading.Event = field(default_factory=threading.Event)
    closing: bool = False  # unloaded while in use: closed by the last release

    def note_reference(self, reference: str) -> None:
        if reference in self.references:
            self.references.remove(reference)
        self.references.insert(0, reference)
        del self.references[MAX_REFERENCES:]


class Served:
    """A model acquired for use; see the module docstring. Release it exactly once."""

    def __init__(self, store: ModelStore, entry: _Entry) -> None:
        assert entry.engine is not None
        self._store = store
        self._entry = entry
        self._released = False
        self.engine: Engine = entry.engine
        self.model_version = entry.target.model_version
        self.checkpoint_dir = entry.target.checkpoint_dir
        self.chat_template = entry.chat_template
        self.context_length = int(entry.engine.context_length)
        # Prompts longer than this (in chars) cannot fit the context; None = no such bound.
        self.prompt_chars_limit = prompt_bound.prompt_chars_limit(
            entry.chars_per_token, self.context_length
        )

    @property
    def loaded_model(self) -> inference_pb2.LoadedModel:
        """The model as it is now."""
        return self._store.snapshot(self._entry)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._store._release(self._entry)

    def __enter__(self) -> Served:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class ModelStore:
    """Models in memory within `memory_budget_bytes`; thread-safe (see the module docstring)."""

    def __init__(
        self,
        registry_stub: Any,
        data_dir: Path,
        memory_budget_bytes: int,
        *,
        load_engine: LoadEngine | None = None,
        estimate_memory_bytes: EstimateMemory | None = None,
        warmup_batch: int = 0,
    ) -> None:
        self.memory_budget_bytes = memory_budget_bytes
        # Batch sizes up to this are compiled while a model loads (before it is READY), so that
        # the first requests of each batch size do not wait for XLA; 0 = compile on first use.
        self.warmup_batch = warmup_batch
        self.resolver = Resolver(registry_stub)
        self.artifacts = ArtifactCache(registry_stub, data_dir / "artifacts")
        self._load_engine = load_engine
        self._estimate = estimate_memory_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._retiring: dict[int, _Entry] = {}  # id -> unloaded but still in use

    # Public API.

    def resolve(self, reference: str) -> tuple[Target, model_pb2.ModelVersion | None]:
        """What `reference` names now (NotFound when nothing)."""
        return self.resolver.resolve(reference)

    def acquire(
        self,
        reference: str,
        *,
        backend: str = "",
        precision: str = "",
        pin: bool | None = None,
    ) -> Served:
        """The model `reference` names, loaded if needed, held until released."""
        target, _ = self.resolver.resolve(reference)
        while True:
            with self._lock:
                entry = self._entries.get(target.key)
                if entry is not None and entry.state == inference_pb2.LOADED_MODEL_STATE_FAILED:
                    del self._entries[target.key]  # a failed load is retried
                    entry = None
                if entry is None:
                    entry = _Entry(target, backend, precision, bool(pin))
                    entry.note_reference(reference.strip())
                    self._entries[target.key] = entry
                    owner = True
                else:
                    self._check_compatible(entry, backend, precision)
                    entry.note_reference(reference.strip())
                    if pin is not None:
                        entry.pinned = pin
                    entry.in_use += 1  # holds it through the wait below
                    owner = False
            if owner:
                self._load(entry)  # returns it READY and already held by this caller
                return Served(self, entry)
            entry.ready.wait()
            with self._lock:
                if entry.state == inference_pb2.LOADED_MODEL_STATE_READY and not entry.closing:
                    entry.last_use = time.time()
                    entry.request_count += 1
                    return Served(self, entry)
                error = entry.error
            self._release(entry)  # closes it if it was retired while we held it
            if error is not None:
                raise error
            # Unloaded while we waited: load it again.

    def get(self, reference: str) -> inference_pb2.LoadedModel:
        """The model `reference` names if it is in memory; NotFound otherwise."""
        target, _ = self.resolver.resolve(reference)
        with self._lock:
            entry = self._entries.get(target.key)
        if entry is None:
            raise NotFound("loaded model", reference, f"model {reference!r} is not loaded")
        return self.snapshot(entry)

    def is_ready(self, reference: str) -> bool:
        """Whether `reference` names a model that is in memory and ready (False for unknown)."""
        try:
            return self.get(reference).state == inference_pb2.LOADED_MODEL_STATE_READY
        except TunixError:
            return False

    def unload(self, reference: str) -> inference_pb2.LoadedModel:
        """Removes the model from memory (closed once no request uses it); NotFound when it is
        not in memory."""
        target, _ = self.resolver.resolve(reference)
        with self._lock:
            entry = self._entries.get(target.key)
            if entry is None or entry.state == inference_pb2.LOADED_MODEL_STATE_LOADING:
                if entry is None:
                    raise NotFound("loaded model", reference, f"model {reference!r} is not loaded")
                raise FailedPrecondition(f"model {reference!r} is still loading")
            del self._entries[target.key]
            state = entry.state
            entry.state = inference_pb2.LOADED_MODEL_STATE_UNLOADING
            snapshot = self._snapshot_locked(entry)
            snapshot.state = state
            close_now = self._retire_locked(entry)
        if close_now is not None:
            close_now.close()
        return snapshot

    def loaded(self) -> list[inference_pb2.LoadedModel]:
        """Every model in memory, most recently used first."""
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.last_use, reverse=True)
            return [self._snapshot_locked(e) for e in entries]

    def memory_used_bytes(self) -> int:
        with self._lock:
            return self._used_locked()

    def snapshot(self, entry: _Entry) -> inference_pb2.LoadedModel:
        with self._lock:
            return self._snapshot_locked(entry)

    def close(self) -> None:
        """Closes every model (server shutdown)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.engine is not None:
                entry.engine.close()

    # Loading.

    def _load(self, entry: _Entry) -> None:
        """Fetches and loads `entry` (this thread owns its load); raises what failed."""
        started = time.monotonic()
        try:
            load_engine, estimate = self._loaders()
            model_dir, base_dir = self._local_dirs(entry.target)
            config = read_config(model_dir)
            entry.chat_template = config.chat_template
            entry.architecture = config.architecture.family
            needed = int(estimate(model_dir, entry.backend))
            victims = self._make_room(entry, needed)
            for victim in victims:
                victim.close()
            engine = load_engine(
                model_dir,
                backend=entry.backend,
                precision=LOADER_PRECISIONS.get(entry.precision, "auto"),
                base_dir=base_dir,
            )
            chars_per_token = prompt_bound.chars_per_token(engine.tokenizer.tokenizer)
            warmup = getattr(engine, "warmup", None)  # the JAX engine compiles; torch has nothing
            if self.warmup_batch and warmup is not None:
                warmup(self.warmup_batch)
        except Exception as err:  # every failure is reported on the entry, then raised
            error = (
                err
                if isinstance(err, TunixError)
                else FailedPrecondition(
                    f"cannot load {entry.target.key}: {type(err).__name__}: {err}"
                )
            )
            with self._lock:
                entry.state = inference_pb2.LOADED_MODEL_STATE_FAILED
                entry.error = error
                entry.memory_bytes = 0
            entry.ready.set()
            raise error from err
        with self._lock:
            entry.engine = engine
            entry.chars_per_token = chars_per_token
            entry.memory_bytes = int(engine.memory_bytes)
            entry.state = inference_pb2.LOADED_MODEL_STATE_READY
            entry.load_time = time.time()
            entry.load_duration = time.monotonic() - started
            entry.last_use = time.time()
            # Held by the loading caller from the moment it is READY: in a later, separate step
            # an unload or an eviction could close it before the caller got hold of it.
            entry.in_use += 1
            entry.request_count += 1
        entry.ready.set()

    def _loaders(self) -> tuple[LoadEngine, EstimateMemory]:
        if self._load_engine is None or self._estimate is None:
            load_engine, estimate = _real_loader()
            self._load_engine = self._load_engine or load_engine
            self._estimate = self._estimate or estimate
        return self._load_engine, self._estimate

    def _local_dirs(self, target: Target) -> tuple[Path, Path | None]:
        """The model's directory on this host and, for an adapter, its base's."""
        model_dir = (
            Path(target.checkpoint_dir)
            if target.checkpoint_dir
            else self.artifacts.fetch(target.artifact)
        )
        adapter = read_config(model_dir).adapter
        if not adapter:
            return model_dir, None
        base = str(adapter.get("base") or "")
        if not base:
            raise FailedPrecondition(f"{target.key} is an adapter that names no base model")
        base_target, _ = self.resolver.resolve(base)
        base_dir = (
            Path(base_target.checkpoint_dir)
            if base_target.checkpoint_dir
            else self.artifacts.fetch(base_target.artifact)
        )
        return model_dir, base_dir

    def _make_room(self, entry: _Entry, needed: int) -> list[Engine]:
        """Reserves `needed` bytes for `entry`, evicting least recently used idle models; returns
        the engines to close. ResourceExhausted when it cannot fit."""
        if needed > self.memory_budget_bytes:
            raise ResourceExhausted(
                f"{entry.target.key} needs about {needed} bytes, more than the whole memory "
                f"budget of {self.memory_budget_bytes} bytes"
            )
        closing: list[Engine] = []
        with self._lock:
            entry.memory_bytes = needed
            idle = sorted(
                (
                    e
                    for e in self._entries.values()
                    if e is not entry
                    and e.state == inference_pb2.LOADED_MODEL_STATE_READY
                    and not e.pinned
                    and e.in_use == 0
                ),
                key=lambda e: e.last_use,
            )
            while self._used_locked() > self.memory_budget_bytes and idle:
                victim = idle.pop(0)
                del self._entries[victim.target.key]
                victim.state = inference_pb2.LOADED_MODEL_STATE_UNLOADING
                engine = self._retire_locked(victim)
                if engine is not None:
                    closing.append(engine)
            if self._used_locked() > self.memory_budget_bytes:
                entry.memory_bytes = 0
                raise ResourceExhausted(
                    f"{entry.target.key} needs about {needed} bytes; "
                    f"{self._used_locked()} of the {self.memory_budget_bytes}-byte budget are "
                    "held by pinned, busy or loading models"
                )
        return closing

    # Bookkeeping (callers hold self._lock where the name says so).

    def _used_locked(self) -> int:
        # Unloaded or evicted models that requests still use hold their memory until the last
        # release closes them, so they count against the budget too.
        listed = sum(e.memory_bytes for e in self._entries.values())
        return listed + sum(e.memory_bytes for e in self._retiring.values())

    def _retire_locked(self, entry: _Entry) -> Engine | None:
        """The engine to close now, or None when requests still use it (the last release closes
        it)."""
        entry.closing = True
        if entry.in_use > 0 or entry.engine is None:
            if entry.engine is not None:
                self._retiring[id(entry)] = entry
            return None
        engine, entry.engine = entry.engine, None
        return engine

    def _release(self, entry: _Entry) -> None:
        engine = None
        with self._lock:
            entry.in_use -= 1
            entry.last_use = time.time()
            if entry.closing and entry.in_use == 0 and entry.engine is not None:
                engine, entry.engine = entry.engine, None
                self._retiring.pop(id(entry), None)
        if engine is not None:
            engine.close()

    def _check_compatible(self, entry: _Entry, backend: str, precision: str) -> None:
        for what, asked, held in (
            ("backend", backend, entry.backend),
            ("precision", precision, entry.precision),
        ):
            if asked and held and asked != held:
                raise FailedPrecondition(
                    f"{entry.target.key} is loaded with {what} {held}; unload it to load it with "
                    f"{asked}"
                )

    def _snapshot_locked(self, entry: _Entry) -> inference_pb2.LoadedModel:
        engine = entry.engine
        model = inference_pb2.LoadedModel(
            model_version=entry.target.model_version,
            checkpoint_dir=entry.target.checkpoint_dir,
            artifact=entry.target.artifact,
            references=entry.references,
            state=entry.state,
            architecture=entry.architecture,
            memory_bytes=entry.memory_bytes,
            pinned=entry.pinned,
            request_count=entry.request_count,
            chat_template=entry.chat_template,
            last_use_time=_timestamp(entry.last_use),
        )
        if entry.error is not None:
            model.error.CopyFrom(
                status_pb2.Status(
                    code=_ERROR_CODES.get(entry.error.reason, code_pb2.FAILED_PRECONDITION),
                    message=entry.error.message,
                )
            )
        if engine is not None:
            model.backend = BACKENDS.get(engine.backend, backend_pb2.BACKEND_UNSPECIFIED)
            precision = str(getattr(engine, "precision", "") or entry.precision or "float32")
            model.precision = PRECISIONS.get(precision, backend_pb2.PRECISION_FLOAT32)
            model.parameter_count = int(engine.parameter_count)
            model.context_length = int(engine.context_length)
            model.vocab_size = int(engine.vocab_size)
            model.devices.extend(engine.devices)
            model.load_time.CopyFrom(_timestamp(entry.load_time))
            model.load_duration.CopyFrom(duration_pb2.Duration(nanos=0))
            model.load_duration.FromNanoseconds(int(entry.load_duration * 1e9))
        return model
