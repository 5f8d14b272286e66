"""One embedded platform for all the pages' tests (starting it takes a few seconds)."""
import pytest

from tests.infra import embedded_platform


@pytest.fixture(scope="package")
def base_url(tmp_path_factory):
    with embedded_platform(tmp_path_factory.mktemp("pages")) as base:
        yield base
