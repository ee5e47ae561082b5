"""How the Ray executor turns an allocation into ranks and placement-group bundles (no cluster
needed): one rank per node on CPUs, one per GPU across nodes, one rank with everything on a node."""

from __future__ import annotations

from tunix_rt.training.executors.ray_ranks import Rank, plan
from tunix_rt.v1 import run_pb2

A, B = "127.0.0.1/aaaa", "127.0.0.2/bbbb"


def assignment(kind: str, ids: list[str]) -> run_pb2.DeviceAssignment:
    return run_pb2.DeviceAssignment(kind=kind, count=len(ids), ids=ids)


def test_cpus_on_two_nodes_are_one_rank_per_node() -> None:
    hosts = {"cpu:0": A, "cpu:1": A, "cpu:2": B, "cpu:3": B}
    ranks = plan(assignment("cpu", list(hosts)), hosts)
    assert ranks == [Rank(A, ("cpu:0", "cpu:1"), "cpu"), Rank(B, ("cpu:2", "cpu:3"), "cpu")]
    assert [r.bundle() for r in ranks] == [{"CPU": 2.0}, {"CPU": 2.0}]
    assert ranks[1].node_id == "bbbb"


def test_gpus_across_nodes_are_one_rank_per_gpu_and_on_one_node_one_rank() -> None:
    hosts = {"gpu:0": A, "gpu:1": A, "gpu:2": B}
    spread = plan(assignment("gpu", list(hosts)), hosts)
    assert [(r.host, r.ids) for r in spread] == [(A, ("gpu:0",)), (A, ("gpu:1",)), (B, ("gpu:2",))]
    assert all(r.bundle() == {"GPU": 1.0} for r in spread)
    packed = plan(assignment("gpu", ["gpu:0", "gpu:1"]), hosts)
    assert packed == [Rank(A, ("gpu:0", "gpu:1"), "gpu")]
