"""Where a training job's workers run: the executor boundary of the training service.

The job manager keeps every decision it owns (queue, priorities, all-or-nothing allocation, job
states, metrics, checkpoints, registration) and asks an executor only to start an attempt on the
devices it allocated, and to stop it. Two executors:

    local  worker processes on this host (worker_process.py): the embedded default
    ray    ranks on the nodes of a Ray cluster (ray_cluster.py, ray_ranks.py): Ray gives the
           inventory of every node, reserves the gang with a placement group and runs the ranks

Plain Python: no grpc here; `ray` is imported only by the Ray executor's modules.
"""
