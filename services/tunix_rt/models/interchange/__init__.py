"""Model directories and Hugging Face interchange, free of JAX and torch (importable anywhere)."""
