"""User plugins: modules that register models, pruning methods or quotas, imported in every process of a study."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path


def load_plugins(plugins) -> None:
    """Import user modules (names or .py paths) that register models, methods or quotas."""
    for plugin in plugins:
        if str(plugin).endswith(".py"):
            path = Path(plugin).resolve()
            # named by its whole path: two plugin files of one name in different directories are two modules
            name = f"raysweep_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None:
                raise ImportError(f"cannot import plugin file {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            importlib.import_module(plugin)
