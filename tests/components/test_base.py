"""What every component inherits (components/base.py): OPTIONS checked against what the store
accepts, an unknown option named with the accepted list."""

import pytest

from backups_app import components
from backups_app.errors import ConfigurationError
from tests.stacks import ENGINES


def test_unknown_source_option_is_rejected_with_the_accepted_list(sources):
    sources(uploads=(ENGINES["uploads"], {"path": "/x", "folder": "/y"}))
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) folder; UploadsComponent accepts path"):
        components.all_components()
