"""What training and inference share about models, knowing neither service.

Architecture presets and their config (`presets`), the tokenizer (`tokenizer`), answer extraction
(`answers`), the LoRA spec (`lora`), model-directory writing (`model_dir`), the JAX and torch
model definitions and weight I/O (`jax/`, `torch/`, each importing only its own framework) and
the Hugging Face interchange (`interchange/`, numpy and safetensors only). Nothing here imports
tunix_rt.training, tunix_rt.registry or tunix_rt.inference (tests/test_architecture.py holds it
to that); it stands on tunix_rt.common alone.
"""
