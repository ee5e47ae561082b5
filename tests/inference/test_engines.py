"""The inference engines on tiny random models: exactness, sampling, finish reasons, batching."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import pytest

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.inference.engines.base import (
    CANCELLED,
    CONTEXT_LENGTH,
    END_OF_SEQUENCE,
    LENGTH,
    STOP,
    Engine,
    Finished,
    Piece,
    Sampling,
)
from tunix_rt.inference.engines.loader import estimate_memory_bytes, load_engine
from tunix_rt.inference.engines.sampling import RequestState
from tunix_rt.models.interchange.model_config import hf_config
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax.model_dir import write_model_dir
from tunix_rt.models.presets import get
from tunix_rt.models.tokenizer import TextTokenizer, train_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEXTS = ["Tom has 3 apples and buys 4 more.", "Answer: 7 apples", "the cat sat on the mat"]
PROMPTS = ["Tom has", "the cat sat on", "3 apples and buys 4 more. How many"]
NEVER: Callable[[], bool] = lambda: False  # noqa: E731


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # GPT-2-style pieces: the token counts asserted below are of this tokenizer.
    tokenizer = train_tokenizer(TEXTS * 10, 300, split_letters=False)
    arch = dataclasses.replace(get("llama3-tiny").config, vocab_size=300)
    model = model_lib.create_model(arch, seed=0)
    path = tmp_path_factory.mktemp("engines") / "model"
    return write_model_dir(path, model, arch, tokenizer, chat_template="plain", training_step=0)


@pytest.fixture(scope="module")
def jax_engine(model_dir: Path) -> Any:
    engine = load_engine(model_dir, backend="jax")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def torch_engine(model_dir: Path) -> Any:
    engine = load_engine(model_dir, backend="torch")
    yield engine
    engine.close()


def run(engine: Engine, prompt: str, sampling: Sampling) -> tuple[list[Piece], Finished]:
    events = list(engine.generate(engine.encode_prompt(prompt), sampling, NEVER))
    finished = events[-1]
    assert isinstance(finished, Finished)
    pieces = [e for e in events if isinstance(e, Piece)]
    assert "".join(p.text for p in pieces) == finished.text  # streaming adds up
    return pieces, finished


def run_concurrently(engine: Engine, prompts: list[str], sampling: Sampling) -> list[Finished]:
    results: dict[int, Finished] = {}

    def one(i: int) -> None:
        results[i] = run(engine, prompts[i], sampling)[1]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[i] for i in range(len(prompts))]


def naive_greedy(model: Any, prompt_ids: list[int], steps: int) -> list[int]:
    """Greedy decoding without a cache: the whole sequence (right padded to a fixed length, so
    it compiles once) through the model every step."""
    import jax
    import numpy as np
    from flax import nnx

    width = 32
    graphdef, state = nnx.split(model)
    mask = jnp.tril(jnp.ones((width, width), bool))[None]

    @jax.jit
    def logits_of(state: Any, tokens: jax.Array) -> jax.Array:
        out, _ = nnx.merge(graphdef, state)(tokens, jnp.arange(width)[None], None, mask)
        first: jax.Array = out[0]
        return first

    ids = list(prompt_ids)
    for _ in range(steps):
        tokens = np.zeros((1, width), np.int32)
        tokens[0, : len(ids)] = ids
        ids.append(int(jnp.argmax(logits_of(state, tokens)[len(ids) - 1])))
    return ids[len(prompt_ids) :]


def test_jax_greedy_matches_a_no_cache_loop(model_dir: Path, jax_engine: Engine) -> None:
    from tunix_rt.models.jax.model_dir import load_model_dir

    model, _, _ = load_model_dir(model_dir)
    results = run_concurrently(jax_engine, PROMPTS, Sampling(max_new_tokens=10))
    tokenizer = jax_engine.tokenizer
    for prompt, finished in zip(PROMPTS, results, strict=True):
        expected = naive_greedy(model, jax_engine.encode_prompt(prompt), 10)
        if tokenizer.eos_id() in expected:
            expected = expected[: expected.index(tokenizer.eos_id())]
        assert finished.text == tokenizer.decode(expected)


@pytest.mark.parametrize("preset", ["llama3-tiny", "qwen2-tiny", "qwen3-tiny"])
def test_jax_decode_step_gives_the_tunix_logits(preset: str) -> None:
    """The engine's own decode attention (jax_decode) against the tunix model's forward pass
    without a cache, for each family's projections (qwen2 biases, qwen3 q/k norms): prefill
    two prompts, decode three tokens, compare every step's logits."""
    import jax
    import numpy as np

    from tunix_rt.inference.engines.jax_engine import JaxCore

    arch = get(preset).config
    model = model_lib.create_model(arch, seed=0)
    core = JaxCore(model, arch, jnp.float32, capacity=4)
    prompts = [[1, 5, 9, 13, 2, 7], [1, 3]]
    rows = [0, 2]
    _, logits = core.prefill(rows, prompts, True)
    sequences = [list(p) for p in prompts]
    width = 16
    mask = jnp.tril(jnp.ones((width, width), bool))[None]

    @jax.jit
    def reference(tokens: jax.Array) -> jax.Array:
        out, _ = model(tokens, jnp.arange(width)[None], None, mask)
        result: jax.Array = out[0]
        return result

    for step in range(4):
        assert logits is not None
        for i, seq in enumerate(sequences):
            tokens = np.zeros((1, width), np.int32)
            tokens[0, : len(seq)] = seq
            expected = np.asarray(reference(tokens))[len(seq) - 1]
            np.testing.assert_allclose(logits[i], expected, rtol=1e-4, atol=1e-4)
        if step == 3:
            break
        fed = [(11 * step + 3 * i) % arch.vocab_size for i in range(len(rows))]
        for seq, token in zip(sequences, fed, strict=True):
            seq.append(token)
        _, logits = core.decode(rows, fed, True)


def test_torch_greedy_matches_transformers_generate(torch_engine: Any) -> None:
    import torch

    results = run_concurrently(torch_engine, PROMPTS, Sampling(max_new_tokens=10))
    for prompt, finished in zip(PROMPTS, results, strict=True):
        ids = torch.tensor([torch_engine.encode_prompt(prompt)])
        with torch.inference_mode():
            out = torch_engine.model.generate(
                input_ids=ids, max_new_tokens=10, do_sample=False, pad_token_id=0
            )
        expected = torch_engine.tokenizer.decode(out[0, ids.shape[1] :].tolist())
        assert finished.text == expected


def test_both_engines_agree(jax_engine: Engine, torch_engine: Engine) -> None:
    sampling = Sampling(max_new_tokens=12)
    assert (
        run(jax_engine, PROMPTS[2], sampling)[1].text
        == run(torch_engine, PROMPTS[2], sampling)[1].text
    )


def test_seed_fixes_the_sample(jax_engine: Engine) -> None:
    def sample(seed: int) -> str:
        sampling = Sampling(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.95, seed=seed)
        return run(jax_engine, "Tom has", sampling)[1].text

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1
    # The same seed gives the same text when other requests share the batch.
    crowd = run_concurrently(
        jax_engine,
        ["Tom has"] * 4,
        Sampling(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.95, seed=1),
    )
    assert {f.text for f in crowd} == {sample(1)}


def test_a_negative_seed_is_its_64_bit_twos_complement(model_dir: Path) -> None:
    # numpy refuses negative seeds; torch (and so vLLM) reads them as their 64-bit pattern.
    tokenizer = TextTokenizer.load(model_dir)
    draws = [
        RequestState([1], Sampling(seed=seed), tokenizer, 512).rng.random(4).tolist()
        for seed in (-1, 2**64 - 1, -(2**63), 2**63)
    ]
    assert draws[0] == draws[1] and draws[2] == draws[3] and draws[0] != draws[2]


def test_stop_sequence_cuts_the_text(jax_engine: Engine) -> None:
    full = run(jax_engine, PROMPTS[0], Sampling(max_new_tokens=16))[1].text
    stop = full[5:8]
    cut = full[: full.index(stop)]
    _, finished = run(jax_engine, PROMPTS[0], Sampling(max_new_tokens=16, stop=(stop,)))
    assert finished.finish_reason == STOP
    assert finished.text == cut


def test_length_and_context_limits(jax_engine: Engine) -> None:
    _, finished = run(jax_engine, "Tom has", Sampling(max_new_tokens=5))
    assert (finished.finish_reason, finished.completion_tokens) == (LENGTH, 5)
    prompt = [jax_engine.tokenizer.bos_id()] + [5] * (jax_engine.context_length - 4)
    events = list(jax_engine.generate(prompt, Sampling(max_new_tokens=50), NEVER))
    last = events[-1]
    assert isinstance(last, Finished)
    assert (last.finish_reason, last.completion_tokens) == (CONTEXT_LENGTH, 3)


def test_reasoning_limit_forces_an_answer_line(jax_engine: Engine) -> None:
    sampling = Sampling(max_new_tokens=20, max_reasoning_tokens=5)
    _, finished = run(jax_engine, "the cat", sampling)
    assert "\nAnswer:" in finished.text
    assert finished.reasoning_tokens == 5


def test_request_state_eos_and_split_stop(model_dir: Path) -> None:
    tokenizer = TextTokenizer.load(model_dir)
    state = RequestState([1], Sampling(), tokenizer, 512)
    assert state.advance(tokenizer.encode("cat")[0])
    events = state.advance(tokenizer.eos_id())
    assert isinstance(events[-1], Finished) and events[-1].finish_reason == END_OF_SEQUENCE
    # "sat" split over single-byte tokens: "s" is held back until "a", "t" complete the stop.
    state = RequestState([1], Sampling(stop=("sat",)), tokenizer, 512)
    streamed = ""
    for char in "the sat":
        for event in state.advance(tokenizer.tokenizer.token_to_id(char) or 0):
            if isinstance(event, Piece):
                streamed += event.text
    assert state.finished is not None and state.finished.finish_reason == STOP
    assert state.finished.text == streamed == "the"


def test_cancel_leaves_the_batch_promptly(jax_engine: Engine) -> None:
    sampling = Sampling(max_new_tokens=400)
    # A prompt the random model does not end by itself (EOS) within the limit.
    candidates = ["the cat", "Tom has", "apples", "sat on the mat", "4 more"]
    endless = [p for p in candidates if run(jax_engine, p, sampling)[1].finish_reason == LENGTH]
    if not endless:
        pytest.skip("every candidate prompt reaches EOS on this random model")
    flag = threading.Event()
    others: list[Finished] = []

    def other() -> None:
        others.append(run(jax_engine, "Tom has", Sampling(max_new_tokens=60))[1])

    thread = threading.Thread(target=other)
    thread.start()
    start = time.monotonic()
    events = []
    for event in jax_engine.generate(jax_engine.encode_prompt(endless[0]), sampling, flag.is_set):
        events.append(event)
        flag.set()
    thread.join()
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == CANCELLED
    assert finished.completion_tokens < 100 and time.monotonic() - start < 10
    assert others[0].finish_reason in (LENGTH, END_OF_SEQUENCE)


def test_concurrent_requests_share_batches(jax_engine: Any, torch_engine: Any) -> None:
    for engine in (jax_engine, torch_engine):
        results = run_concurrently(engine, PROMPTS * 3, Sampling(max_new_tokens=30))
        assert all(f.completion_tokens > 0 for f in results)
        assert engine.scheduler.stats.max_batch > 1


def test_a_batch_is_admitted_together(jax_engine: Any, torch_engine: Any) -> None:
    """generate_batch queues its prompts at once: one prefill admits all of them, the first
    decode step runs them all, and each text is the one it gets alone."""
    sampling = Sampling(max_new_tokens=20)
    for engine in (jax_engine, torch_engine):
        alone = [run(engine, prompt, sampling)[1].text for prompt in PROMPTS]
        stats = engine.scheduler.stats
        prefills, sizes = stats.prefills, stats.batch_sizes.copy()
        finished = engine.generate_batch([engine.encode_prompt(p) for p in PROMPTS], sampling)
        assert [f.text for f in finished] == alone
        assert stats.prefills == prefills + 1
        grown = stats.batch_sizes - sizes
        assert grown[len(PROMPTS)] >= 1 and max(grown) == len(PROMPTS)


def test_generate_to_pushes_the_events_and_polls_for_cancel(jax_engine: Engine) -> None:
    """The pushed form of generate (what the service uses): the same events, handed over on
    the engine's thread; a request whose `cancelled()` turns true leaves at the next step."""
    pushed: queue.Queue[Any] = queue.Queue()
    _, alone = run(jax_engine, "Tom has", Sampling(max_new_tokens=12))
    jax_engine.generate_to(
        jax_engine.encode_prompt("Tom has"), Sampling(max_new_tokens=12), NEVER, pushed.put
    )
    events = [pushed.get(timeout=60)]
    while not isinstance(events[-1], Finished):
        events.append(pushed.get(timeout=60))
    assert events[-1].text == alone.text == "".join(e.text for e in events[:-1])
    flag = threading.Event()
    jax_engine.generate_to(
        jax_engine.encode_prompt("the cat"), Sampling(max_new_tokens=400), flag.is_set, pushed.put
    )
    first = pushed.get(timeout=60)
    flag.set()
    last = first
    while not isinstance(last, Finished):
        last = pushed.get(timeout=10)
    assert isinstance(last, Finished)
    if last.finish_reason != END_OF_SEQUENCE:  # the random model may end before the cancel
        assert last.finish_reason == CANCELLED and last.completion_tokens < 100


def test_loader_sizes_and_checks(model_dir: Path) -> None:
    arch = get("llama3-tiny").config
    assert estimate_memory_bytes(model_dir) > 4 * 300 * arch.hidden_size
    with pytest.raises(InvalidArgument):
        load_engine(model_dir, backend="tensorflow")
    assert hf_config(arch, bos_id=1, eos_id=2, pad_id=0)["model_type"] == "llama"


def test_adapter_directory_loads_onto_its_base(model_dir: Path, tmp_path: Path) -> None:
    from tunix_rt.models.jax.model_dir import load_model_dir
    from tunix_rt.models.lora import LoraSpec

    model, tokenizer, config = load_model_dir(model_dir)
    lora = LoraSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))
    adapted = model_lib.apply_lora(model, lora, seed=0)  # B = 0: the same function as the base
    adapter_dir = write_model_dir(
        tmp_path / "adapter",
        adapted,
        config.architecture,
        tokenizer,
        chat_template="plain",
        training_step=1,
        lora=lora,
        lora_mode="adapter",
    )
    base_engine = load_engine(model_dir, backend="jax")
    expected = run(base_engine, PROMPTS[0], Sampling(max_new_tokens=8))[1].text
    base_engine.close()
    for backend in ("jax", "torch"):
        engine = load_engine(adapter_dir, backend=backend, base_dir=model_dir)
        try:
            assert run(engine, PROMPTS[0], Sampling(max_new_tokens=8))[1].text == expected
        finally:
            engine.close()


def test_after_the_warm_up_serving_compiles_nothing(model_dir: Path) -> None:
    """`warmup` and the deferred warm-up it leaves for idle time compile every shape these
    requests reach: batches that jump buckets and shrink, a prompt of 65-128 tokens (the
    128-token prompt bucket) and a row outgrowing the initial 128-slot ring. Each text is the
    one its prompt gets alone (the chained resizes keep every row's cache)."""
    import jax

    engine: Any = load_engine(model_dir, backend="jax")
    compiled: list[str] = []

    class Compiles(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Finished XLA compilation" in record.getMessage():
                compiled.append(record.getMessage())

    handler = Compiles()
    try:
        engine.warmup(4)
        deadline = time.monotonic() + 300
        while engine.scheduler.idle_work_pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not engine.scheduler.idle_work_pending
        long_prompt = "Tom has 3 apples and buys 4 more. " * 6
        assert 64 < len(engine.encode_prompt(long_prompt)) <= 128
        logging.getLogger("jax").addHandler(handler)
        # Global, not `jax.log_compiles()`: that is per thread, and the engine's thread compiles.
        jax.config.update("jax_log_compiles", True)  # type: ignore[no-untyped-call]
        sampling = Sampling(max_new_tokens=24)
        alone = {p: run(engine, p, sampling)[1].text for p in PROMPTS}
        for prompts in (PROMPTS + PROMPTS[:1], PROMPTS[:2], PROMPTS):
            texts = [f.text for f in run_concurrently(engine, prompts, sampling)]
            assert texts == [alone[p] for p in prompts]
        finished = run_concurrently(
            engine, [long_prompt, *PROMPTS[:2]], Sampling(max_new_tokens=80)
        )
        # The long row outgrew the 128-slot ring (the random model does not stop early here).
        assert finished[0].finish_reason == LENGTH
        assert len(engine.encode_prompt(long_prompt)) + finished[0].completion_tokens > 128
        assert compiled == [], compiled
    finally:
        jax.config.update("jax_log_compiles", False)  # type: ignore[no-untyped-call]
        logging.getLogger("jax").removeHandler(handler)
        engine.close()
