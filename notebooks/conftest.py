"""The notebooks read the shared dev data; without it they skip, as the dev-data tests do."""

from __future__ import annotations

import pytest

from geosound.config import dev_data_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip every notebook, saying why, when the dev data is missing."""
    root = dev_data_dir()
    if root.is_dir():
        return
    reason = f"no dev data at {root} (set GEOSOUND_DEV_DATA to the shared data folder)"
    for item in items:
        if item.path.suffix == ".ipynb":  # the hook sees the whole session's items
            item.add_marker(pytest.mark.skip(reason=reason))
