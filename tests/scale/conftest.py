import pytest

from tests.scale.site import Site, create_catalog, drop_catalog


@pytest.fixture
def catalog():
    """DATABASE_URL of a fresh PostgreSQL database, dropped afterwards."""
    name, url = create_catalog()
    yield url
    drop_catalog(name)


@pytest.fixture
def site(tmp_path, catalog):
    """A migrated deployment on the PostgreSQL catalog (ORM broker until a test gives it Redis)."""
    deployment = Site(tmp_path, catalog)
    deployment.manage("migrate", "--noinput", "-v0")
    yield deployment
    deployment.stop_all()
