"""The full package runs on the lite package's engine at exactly its own version, and both versions come from the
one place the version is written: the lite package's ``__version__`` ([tool.hatch.version] reads it). This hook
turns that version into the pin, so no second copy of it exists to forget at a release.

It runs only when building from the repository. An sdist's PKG-INFO already holds the version and the pin, and
hatchling takes dynamic fields from there, so a wheel built from the sdist needs neither this hook nor the lite
package's folder, and its metadata equals the sdist's.
"""

from __future__ import annotations

from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface


class LitePin(MetadataHookInterface):
    """``dependencies`` = the lite package ``==`` this version, then ``[tool.hatch.metadata.hooks.custom]``'s."""

    def update(self, metadata: dict[str, Any]) -> None:
        metadata["dependencies"] = [f"aws-lambda-persistence-lite=={metadata['version']}", *self.config["dependencies"]]
