"""The building blocks of the typed configuration: a strict section base and per-level tables.

Every section of params.yaml is a frozen pydantic model that forbids unknown keys, so a typo such
as `train.grad_clp` stops the DAG instead of silently training with a default.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from hecvl.config.validate import validate_section

LEVELS: tuple[str, ...] = ("clip", "phase", "video")  # fine to coarse: the hierarchy of HecVL


class Section(BaseModel):
    """A section of params.yaml: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (e.g. command-line options), validated like the file's values."""
        return validate_section(type(self), {**self.to_dict(), **changes}, "", "the command line")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists), which validate back into an equal section."""
        return self.model_dump(mode="json")


class _PerLevel(Section):
    """One value per level of the hierarchy, read like a mapping (`batch_size["clip"]`)."""

    def __getitem__(self, level: str) -> Any:
        if level not in LEVELS:
            raise KeyError(level)
        return getattr(self, level)

    def get(self, level: str, default: Any = None) -> Any:
        return getattr(self, level) if level in LEVELS else default

    def items(self) -> list[tuple[str, Any]]:
        return [(lvl, getattr(self, lvl)) for lvl in LEVELS]


class LevelCounts(_PerLevel):
    """Non-negative integers per level (0 leaves a level out, e.g. of the fine_to_coarse block)."""

    clip: NonNegativeInt
    phase: NonNegativeInt
    video: NonNegativeInt


class LevelSizes(_PerLevel):
    """Positive integers per level (batch sizes)."""

    clip: PositiveInt
    phase: PositiveInt
    video: PositiveInt


class LevelWeights(_PerLevel):
    """Non-negative loss weights per level (joint schedule)."""

    clip: NonNegativeFloat = 1.0
    phase: NonNegativeFloat = 1.0
    video: NonNegativeFloat = 1.0


def check_crop(size: tuple[int, int] | None, crop: int | None) -> None:
    """A square crop must fit the resized frame (loader and evaluation transform alike)."""
    if size is not None and crop is not None and crop > min(size):
        raise ValueError(f"crop {crop} is larger than the resized frame {list(size)}")


def reason(text: str, default: Any = ..., **kwargs: Any) -> Any:
    """A field with its one-line reason (kept in the generated schema as the description)."""
    if default is ... and "default_factory" in kwargs:
        return Field(description=text, **kwargs)
    return Field(default, description=text, **kwargs)
