"""The JAX training backend's parts, on google-tunix (DESIGN.md decision 2).

`model` builds tunix models from neutral presets, `weights` maps their parameters to Hugging Face
names, `model_dir` writes and reads self-contained model directories, `loss` and `optimizer` are
the training maths, `trainer` drives tunix's PeftTrainer, `evaluation` and `generate` measure
and sample, `mesh` spreads a job over its devices. The entry point is
`tunix_rt.training.backends.jax_backend`.
"""
