"""What the API answers with: the base of every response model.

Response models are the API's contract, so they live in the API modules beside their
routes and the OpenAPI description documents them. They are built from what the area's
views return, field for field and in the same order, so the JSON a client reads does not
depend on whether a route returns a view row or a model. ``extra="forbid"`` makes a view
that grows a field fail its API tests (the contract changes only on purpose) instead of
silently dropping the field from the answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResponseModel(BaseModel):
    """A response body; build one with ``Model.model_validate(view_row)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
