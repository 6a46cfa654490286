"""docs/openapi.yaml against the daemon's real router, and real answers against its schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from ccdaemon.daemon import api
from tests.conftest import ROOT

if TYPE_CHECKING:
    from tests.daemon.conftest import RunningDaemon

DOCUMENT: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())


def test_the_document_lists_exactly_the_routes_the_daemon_serves() -> None:
    """Every (method, path) of the router is documented, and nothing else is."""
    served = {(route.method.lower(), route.path) for route in api.routes()}
    documented = {
        (method, path)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "delete", "patch"}
    }
    assert served == documented


def required_fields(schema_name: str) -> set[str]:
    """The required properties of a component schema."""
    return set(DOCUMENT["components"]["schemas"][schema_name].get("required", []))


async def test_real_answers_carry_every_field_the_document_requires(daemon: RunningDaemon) -> None:
    """Health and the error form, as the daemon answers them, have the documented fields."""
    status, health = await daemon.call("GET", "/v1/health")
    assert status == 200
    assert required_fields("Health") <= set(health)
    status, error = await daemon.call("GET", "/v1/chaincodes/nobody%3Ax")
    assert status == 404
    assert required_fields("Error") <= set(error)
