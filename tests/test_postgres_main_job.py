"""The README's main job on PostgreSQL at real sizes, through the `tunix-rt` CLI (issue 10, finding
1): the shipped 2,000-trace file imported (and imported again, as a user retries), datasets created
with a split and exported, a tiny model trained, registered and evaluated — each command in the
README's form, against a registry on a fresh PostgreSQL database, whose rows are then counted.

SQLite does not enforce VARCHAR lengths, so only this leg saw the import of more than seven traces
fail with INTERNAL (`idempotency_keys.resource` was VARCHAR(256)). Run it through
scripts/with_postgres.sh, which sets TUNIX_RT_TEST_POSTGRES_URL (CI requires it there).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import TRAIN, MainJobServices, main_job_services
from tests.support import postgres_database
from tunix_rt.client.channel import REGISTRY_ENV
from tunix_rt.client.cli import main
from tunix_rt.client.inference import INFERENCE_ENV
from tunix_rt.client.training import TRAINING_ENV

pytestmark = [pytest.mark.postgres, *JAX_WARNINGS]

SHIPPED = 2000  # traces in datasets/reasoning-train-v1.jsonl
ARITHMETIC = 400  # of them with meta.category=arithmetic
EVAL_ITEMS = 8  # evaluated items: enough for per-item rows, quick on CPU


@dataclass(frozen=True)
class PostgresMainJob:
    """The three services on one PostgreSQL database, and the CLI pointed at them."""

    services: MainJobServices
    database_url: str
    work_dir: Path

    def cli(self, *words: str | Path) -> str:
        """Runs `tunix-rt WORDS…` in-process with the README's exported addresses, each string
        split as a shell would (the README's command lines as they are) and each Path kept whole;
        returns its stdout after checking that it succeeded."""
        args = [w for p in words for w in (shlex.split(p) if isinstance(p, str) else [str(p)])]
        env = {
            REGISTRY_ENV: self.services.registry,
            TRAINING_ENV: self.services.training,
            INFERENCE_ENV: self.services.inference,
        }
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    def cli_json(self, *words: str | Path) -> Any:
        return json.loads(self.cli(*words, "--json"))


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresMainJob]:
    with postgres_database() as url:
        data_dir = tmp_path_factory.mktemp("postgres-main-job")
        with main_job_services(data_dir, database_url=url) as services:
            yield PostgresMainJob(services, url, data_dir)


def import_twice(pg: PostgresMainJob) -> None:
    """`traces import` of the shipped file, then the same command again: a user's retry, which
    stores nothing twice (finding 2)."""
    summary = f"imported {SHIPPED} of {SHIPPED} traces"
    first = pg.cli("traces import", TRAIN, "--source train-v1")
    assert first.strip() == f"{summary}; {SHIPPED} new, 0 already present"
    again = pg.cli("traces import", TRAIN, "--source train-v1")
    assert again.strip() == f"{summary}; 0 new, {SHIPPED} already present"


def create_and_export(pg: PostgresMainJob) -> int:
    """Two datasets with a split, the whole file and the README's `arith`, each exported as SFT
    rows whose count per split is the dataset's; returns the size of `arith`'s eval split."""
    whole = pg.cli_json("datasets create train-v1 --source train-v1 --eval-fraction 0.1")
    arith = pg.cli_json(
        "datasets create arith --meta category=arithmetic --eval-fraction 0.1 --seed 7"
    )
    for dataset, traces in ((whole, SHIPPED), (arith, ARITHMETIC)):
        stats = {k: int(dataset["stats"][k]) for k in ("trace_count", "train_count", "eval_count")}
        assert stats["trace_count"] == traces, stats
        assert stats["train_count"] + stats["eval_count"] == stats["trace_count"]
        assert 0 < stats["eval_count"] < stats["train_count"]

    out = pg.work_dir / "train-v1.jsonl"
    pg.cli("datasets export train-v1 --format sft -o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    stats = whole["stats"]
    assert Counter(r["split"] for r in rows) == {
        "train": int(stats["train_count"]),
        "eval": int(stats["eval_count"]),
    }
    assert all(r["prompt"] and r["target"] for r in rows)

    out = pg.work_dir / "arith.jsonl"
    pg.cli("datasets export arith --split train --format sft --chat-template llama3 -o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["trace"] for r in rows}) == len(rows) == int(arith["stats"]["train_count"])
    assert {r["split"] for r in rows} == {"train"}
    return int(arith["stats"]["eval_count"])


def train(pg: PostgresMainJob) -> dict[str, Any]:
    """`train --evaluate --follow` of the tiny preset on `arith`; returns the finished job after
    checking that it succeeded and registered its version."""
    # The README's command with the tiny preset, a few steps and short sequences.
    out = pg.cli(
        "train --dataset arith --model llama3-tiny --steps 4 --batch-size 4 --seq-len 128"
        " --eval-interval 0 --checkpoint-interval 4 --devices cpu:1"
        " --register-as my-model --alias candidate --evaluate --follow"
    )
    job: dict[str, Any] = pg.cli_json("jobs show", out.splitlines()[0])
    assert job["state"] == "RUN_STATE_SUCCEEDED", job.get("error")
    version = pg.cli_json("models show my-model@candidate")
    assert version["name"] == job["registered_model_version"]
    assert version["source_run"] == job["run"] and version["artifact"]
    return job


def recorded(pg: PostgresMainJob, name: str, items: int, version: str) -> None:
    """Evaluation `name` of `version` on `arith` is recorded with `items` per-item results."""
    shown = pg.cli_json("evaluations show", name, f"--items {items + 1}")
    evaluation = shown["evaluation"]
    assert evaluation["model_version"] == version
    assert evaluation["dataset"] == "datasets/arith"
    assert int(evaluation["item_count"]) == items
    assert len(shown["items"]) == items
    assert all(i["item_id"] and i["prompt"] and i["expected"] for i in shown["items"])


def evaluate(pg: PostgresMainJob, job: dict[str, Any], eval_split: int) -> None:
    """The evaluation the job asked for (its whole eval split, through the inference service)
    and one by `eval` (its first items), each recorded with its per-item results."""
    version = job["registered_model_version"]
    assert job["evaluation"] and "evaluation_error" not in job, job.get("evaluation_error")
    recorded(pg, job["evaluation"], eval_split, version)
    result = pg.cli_json(
        f"eval my-model@candidate --dataset arith --max-items {EVAL_ITEMS} --max-new-tokens 8"
        " --no-progress"
    )
    recorded(pg, result["evaluation"]["name"], EVAL_ITEMS, version)


def assert_stored_in_postgres(pg: PostgresMainJob, eval_split: int) -> None:
    """The rows are in the PostgreSQL database, read with SQL rather than through the registry."""
    engine = create_engine(pg.database_url)
    try:
        with engine.connect() as conn:

            def count(table: str) -> int:
                return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

            assert count("traces") == SHIPPED
            assert count("datasets") == 2
            assert count("model_versions") == 1
            assert count("evaluations") == 2
            assert count("evaluation_items") == eval_split + EVAL_ITEMS
            # The import's idempotency record names all 2,000 traces, a 32-character id each:
            # the column that was VARCHAR(256) (finding 1).
            longest = conn.execute(
                text("SELECT max(length(resource)) FROM idempotency_keys")
            ).scalar_one()
            assert longest >= SHIPPED * 32, longest
    finally:
        engine.dispose()


def test_the_main_job_runs_on_postgresql(pg: PostgresMainJob) -> None:
    import_twice(pg)
    eval_split = create_and_export(pg)
    job = train(pg)
    evaluate(pg, job, eval_split)
    assert_stored_in_postgres(pg, eval_split)
