"""The avatars a server offers, by id: loaded `.avatar` bundles, or the built-in sample."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from animation import MannerismProfile
from avatar.errors import InputError
from avatar.model import Avatar


@dataclass
class ServedAvatar:
    """An avatar as served: its id, the bundle file clients download, and its mannerisms."""

    id: str
    avatar: Avatar
    path: Path
    size_bytes: int
    sha256: str

    @property
    def profile(self) -> MannerismProfile | None:
        """Mannerisms learned at capture time, if the bundle has them."""
        values = self.avatar.metadata.get("mannerisms")
        return MannerismProfile(**values) if values else None

    @cached_property
    def speech_model(self):
        """The person's tuned speech model, or None (the server's default then speaks)."""
        return self.avatar.speech_model()

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.avatar.name, "gaussians": len(self.avatar.head)}

    def details(self) -> dict[str, Any]:
        return {**self.summary(), "model_bytes": self.size_bytes, "model_sha256": self.sha256,
                "metadata": self.avatar.metadata}


def avatar_id(path: Path) -> str:
    """An URL-safe id from a bundle's file name: `Ada Lovelace.avatar` -> `ada-lovelace`."""
    return re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-") or "avatar"


def serve_bundle(path: Path, id_: str | None = None) -> ServedAvatar:
    """Load one bundle (InputError / BundleError with one clear line when it is unusable)."""
    path = Path(path)
    avatar = Avatar.load(path)
    data = path.read_bytes()
    return ServedAvatar(id_ or avatar_id(path), avatar, path.resolve(), len(data), hashlib.sha256(data).hexdigest())


def load_avatars(paths: list[Path]) -> dict[str, ServedAvatar]:
    """Bundles by id, in the order given; InputError when two would share an id."""
    served: dict[str, ServedAvatar] = {}
    for path in paths:
        entry = serve_bundle(path)
        if entry.id in served:
            raise InputError(f"{served[entry.id].path} and {path} would both be served as {entry.id!r}: "
                             "rename one of the files")
        served[entry.id] = entry
    return served


def sample_served(folder: Path) -> ServedAvatar:
    """The built-in sample avatar (the astronaut), written as a bundle into `folder`."""
    from avatar.sample import sample_avatar

    avatar, _, _ = sample_avatar()
    avatar.metadata["made_by"] = "avatar serve (built-in sample)"
    return serve_bundle(avatar.save(Path(folder) / "astronaut.avatar"))
