"""Sizing of the fuzz tests (``@pytest.mark.fuzz``): a small sample in the default suite, many more inputs
when CALLGUARD_FUZZ_EXAMPLES is set (the dedicated run in README "Tests"). Importable from any test module
because pytest puts ``tests/`` (the root conftest's directory) on ``sys.path``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = os.environ.get("CALLGUARD_FUZZ_EXAMPLES")


def fuzz_settings(default: int, weight: float = 1.0) -> settings:
    """``default`` examples normally; ``CALLGUARD_FUZZ_EXAMPLES * weight`` (at least ``default``) in the
    dedicated run. ``weight`` is below 1 for the expensive tests (files, ffmpeg, whole streams)."""
    n = default if not SCALE else max(default, int(int(SCALE) * weight))
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])
