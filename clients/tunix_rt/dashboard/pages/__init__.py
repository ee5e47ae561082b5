"""The dashboard's pages, one module per group: `jobs` (queue, running jobs, devices, cancel and
resume), `runs` (list, run page with live curves, compare), `models` (models, versions, aliases,
lineage), `evaluations` (evaluations, per-item results, leaderboards), `data` (datasets and
sweeps). Each module exports `routes`; handlers are plain functions, which Starlette runs on
its thread pool, because the project's client is synchronous."""
