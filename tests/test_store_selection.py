"""The PostgreSQL pass's selection (tests/conftest.py, `on_test_store`): it keeps the tests
that use a service fixture or are marked `operation_store`, and a test that reaches the test
store without being kept fails instead of silently dropping out of that pass."""

from __future__ import annotations

import pytest

from conftest import STORE_MARK, Service, current_store_url, on_test_store


def test_a_test_using_a_service_fixture_is_on_the_test_store(
    request: pytest.FixtureRequest, service: Service
):
    assert on_test_store(request.node)


@pytest.mark.operation_store
def test_a_marked_test_is_on_the_test_store(request: pytest.FixtureRequest, tmp_path):
    assert on_test_store(request.node)
    current_store_url(tmp_path)  # allowed: the PostgreSQL pass runs it


def test_a_test_reaching_the_store_unselected_fails_naming_the_mark(
    request: pytest.FixtureRequest, tmp_path
):
    assert not on_test_store(request.node)
    with pytest.raises(pytest.fail.Exception, match=f"mark it .*{STORE_MARK}"):
        current_store_url(tmp_path)
