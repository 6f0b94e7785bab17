"""The README's settings table must list every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from realtime.control.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_names(model: type[BaseModel], prefix: str = "REALTIME_") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.append(prefix + name.upper())
    return names


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in env_names(Settings) if f"`{n}`" not in readme]
    assert not missing, f"README settings table lacks {missing}"


def test_readme_starts_with_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("## ")]
    assert "make serve" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()
