"""Training backends: each trains a model from a TrainSpec and TrainData inside a worker process."""
