"""Torch model definitions (transformers), their LoRA (peft) and model directories."""
