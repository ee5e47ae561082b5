"""The conversion half of `tunix-rt models export|import`: registered model archives to and from
Hugging Face directories, for the client's CLI.

Why the commands are split this way: exporting and importing are mostly registry calls (resolve a
reference, download and verify an artifact with resumes, upload one, create a version), which the
client's `RegistryClient` already does well; only the conversion needs the server-side interchange
code (`tunix_rt.models.interchange`: tar layout, config reading, LoRA merging, validation). So the
commands and every registry call stay in the client (`tunix_rt.client.cli.models`), and this module
is all they take from the services distribution: one object, found through the
`tunix_rt.model_interchange` entry point named `huggingface` (pyproject.toml), that satisfies the
client's `ModelInterchange` protocol (`tunix_rt.client.cli.plugins`). Only paths and bytes cross,
and every failure is a `ValueError` with a readable message, so neither side imports the other
(tests/client/test_plugins.py checks the two agree).
"""

from __future__ import annotations

from pathlib import Path

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models.interchange.archive import CONTENT_TYPE, pack_model_dir, unpack_model_dir
from tunix_rt.models.interchange.hf_export import export_hf
from tunix_rt.models.interchange.hf_import import prepare_import
from tunix_rt.models.interchange.model_config import read_config


class HuggingFaceInterchange:
    """Model archives (our tar of a model directory) to and from Hugging Face directories."""

    # The content type of the archives `import_hf` makes, to upload them with.
    content_type = CONTENT_TYPE

    def unpack(self, archive: Path, target: Path) -> Path:
        """The model directory of a version's artifact (a tar file), unpacked at `target`."""
        return unpack_model_dir(archive, target)

    def adapter_base(self, model_dir: Path) -> str | None:
        """None for a full model; for a LoRA adapter the base its config names ("" if none).
        ValueError when the directory's config cannot be read."""
        config = read_config(model_dir)
        if config.adapter is None:
            return None
        return str(config.adapter.get("base", ""))

    def export_hf(self, model_dir: Path, directory: Path, base_dir: Path | None) -> None:
        """Writes `model_dir` as a Hugging Face directory (an adapter merged into `base_dir`);
        ValueError when it cannot be exported."""
        export_hf(model_dir, directory, base_dir)

    def import_hf(self, directory: Path, scratch: Path, chat_template: str | None) -> bytes:
        """The archive of Hugging Face `directory` as a model directory of ours, built under
        `scratch`. ValueError naming, one `field: problem` per line, what is wrong with it."""
        try:
            prepared = prepare_import(directory, scratch / "model", chat_template)
        except InvalidArgument as error:
            lines = [f"{v.field}: {v.description}" for v in error.violations] or [str(error)]
            raise ValueError("\n".join(lines)) from None
        return pack_model_dir(prepared)
