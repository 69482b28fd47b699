"""The sweep engine: a study spec -> a grid of trials -> Ray Tune (+ Ray Train) -> Parquet rows.

    from raysweep import sweep
    run = sweep.run_study(sweep.StudySpec.from_yaml("study.yaml"))

Names are imported when first used, so that reading a spec does not load torch or Ray.
"""

import importlib

_WHERE = {"Trial": "grid", "expand": "grid", "LeaseHeld": "lease", "LeaseLost": "lease", "Grid": "spec",
          "SpecError": "spec", "StudySpec": "spec", "validate": "spec", "Plan": "runner", "ResourceError": "runner",
          "StudyInterrupted": "runner", "StudyRun": "runner", "connect": "runner", "plan": "runner",
          "preflight": "runner", "run_study": "runner", "study_path": "runner"}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
