"""t."""
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import generator
else:
    generator = None


def test_x() -> None:
    assert generator.Y == 1
