"""The checkpoint store (training/checkpoint_store.py) on a file:// URI: a pushed checkpoint comes
back into an empty job directory whole, with its tokenizer and run record; a copy without its
`.done` marker (a push cut short) is never pulled."""

from __future__ import annotations

from pathlib import Path

from tunix_rt.training.checkpoint_store import CheckpointStore


def job_dir(root: Path, steps: list[int]) -> Path:
    for step in steps:
        (root / "checkpoints" / str(step) / "model").mkdir(parents=True)
        (root / "checkpoints" / str(step) / "state.pt").write_bytes(bytes([step]) * 64)
        (root / "checkpoints" / str(step) / "model" / "weights").write_bytes(b"w" * step)
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text('{"vocab": 1}')
    (root / "run.json").write_text('{"backend": "torch"}')
    return root


def test_a_pushed_checkpoint_is_pulled_whole_into_an_empty_job_directory(tmp_path: Path) -> None:
    store = CheckpointStore((tmp_path / "store").as_uri(), "job-1")
    source = job_dir(tmp_path / "node-a", [4, 8])
    assert store.push(source, 4).startswith("file://")
    store.push(source, 8)
    assert store.steps() == [4, 8]
    target = tmp_path / "node-b"
    assert store.pull(target) == 8
    for relative in ("checkpoints/8/state.pt", "checkpoints/8/model/weights", "run.json"):
        assert (target / relative).read_bytes() == (source / relative).read_bytes()
    assert (target / "tokenizer" / "tokenizer.json").read_text() == '{"vocab": 1}'
    assert not (target / "checkpoints" / "4").exists()  # only the newest is needed
    assert store.pull(target) == 0  # already there: nothing copied


def test_a_copy_without_its_done_marker_is_not_pulled(tmp_path: Path) -> None:
    store = CheckpointStore((tmp_path / "store").as_uri(), "job-2")
    source = job_dir(tmp_path / "node-a", [4, 8])
    store.push(source, 4)
    store.push(source, 8)
    (tmp_path / "store" / "jobs" / "job-2" / "checkpoints" / "8.done").unlink()
    assert store.steps() == [4]
    assert store.pull(tmp_path / "node-b") == 4
    assert store.pull(tmp_path / "empty-store-job") == 4
    other = CheckpointStore((tmp_path / "store").as_uri(), "job-3")
    assert other.steps() == [] and other.pull(tmp_path / "node-c") == 0
