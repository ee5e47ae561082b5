"""JAX model definitions (tunix model families), their weights and model directories."""
