"""Data whose shape belongs to someone else, named so that a reader can tell "no type is
possible here" from "nobody wrote the type yet".

Everything with a shape we decide is a dataclass, a TypedDict or a pydantic model. These
two aliases are for the rest, and every use of them is a place our code only carries the
data along:

* ``JSONObject``: a JSON object as another party defines it, passed through without our
  code reading it field by field: a row of a PayTrace export shown in a mapping preview,
  or a connection's settings, whose fields each connector's own settings model (in
  ``connectors/<kind>/``) validates and types.
* ``MappedRecord``: a record in a system's own layout (an SBC contact, a Sage 500
  customer row, a PayTrace transaction) as a mapping spec reads or writes it. Which fields
  exist, how they nest and what they hold (text, numbers, ``Decimal``, ``Money``, dates)
  is the spec's business, so the code that carries such a record cannot type it further.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from pydantic import JsonValue

#: A JSON object defined by another party (an upstream API, a connector's settings model).
JSONObject: TypeAlias = dict[str, JsonValue]

#: A record in a system's own layout, as a mapping spec reads or writes it.
MappedRecord: TypeAlias = dict[str, Any]
