"""A Hatch build hook: ``[tool.hatch.build.hooks.lambda_pack]`` builds the project's layers
next to the wheel.

Registered under the ``hatch`` entry-point group, so it works wherever hatchling builds
(``hatch build``, ``python -m build``, ``pip wheel``) once pip-lambda-pack is in the build
environment. Options (all optional)::

    [tool.hatch.build.hooks.lambda_pack]
    enable-by-default = false   # then: HATCH_BUILD_HOOK_ENABLE_LAMBDA_PACK=true
    out = "lambda-pack"         # the build output, relative to the wheel's directory
    config = "lambda-pack.toml" # the project config (default: found from the project root)
    target = "python3.12-arm64" # overrides the config's target

The hook runs ``pip-lambda-pack build`` after the wheel is written, so errors read exactly as
they do on the command line and fail the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from . import cli

PLUGIN_NAME = "lambda_pack"


class LambdaPackBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Builds the layer zips, code zips and manifest.json of the project's functions."""

    PLUGIN_NAME = PLUGIN_NAME

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        out = Path(artifact_path).parent / self._option("out", "lambda-pack")
        code = cli.main(self.arguments(out))
        if code != 0:
            raise RuntimeError(f"pip-lambda-pack build failed (exit code {code}); see above")
        self.app.display_info(f"lambda-pack: layers and manifest.json in {out}")

    def arguments(self, out: Path) -> list[str]:
        """The ``pip-lambda-pack`` command line this hook runs."""
        args = ["build", "--out", str(out)]
        root = Path(self.root)
        config = self._option("config", "")
        if not config:
            own = root / "lambda-pack.toml"
            config = own.name if own.is_file() else "pyproject.toml"
        args += ["--config", str(root / config)]
        target = self._option("target", "")
        if target:
            args += ["--target", target]
        return args

    def _option(self, key: str, default: str) -> str:
        value = self.config.get(key, default)
        if not isinstance(value, str):
            raise TypeError(f"tool.hatch.build.hooks.lambda_pack.{key} must be a string")
        return value


@hookimpl
def hatch_register_build_hook() -> type[BuildHookInterface]:  # type: ignore[type-arg]
    return LambdaPackBuildHook
