"""Persistence of the registry: the only package of tunix-rt that imports SQLAlchemy.

`schema` defines the tables and `engine` opens and migrates the database. One module per stored
resource holds its reads and writes and returns domain objects, never rows:
`trace_repository` (traces and their meta index), `dataset_repository` (datasets and members),
`run_repository` (runs, events, checkpoints), `model_repository` (models, versions, aliases),
`artifact_repository` (artifact metadata), `evaluation_repository` (evaluations, their items and
leaderboards) and `eval_set_repository` (eval sets and items). `repository.Repository` joins them
into the one object the use cases hold; `base` holds sessions, idempotency keys and retries.
"""
