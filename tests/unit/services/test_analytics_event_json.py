"""The projector reads event data with orjson, and what orjson refuses as json does."""

from __future__ import annotations

import json
import math

from postroom.services.analytics.projector import _loads


def test_event_data_orjson_refuses_is_read_as_the_standard_library_reads_it() -> None:
    text = '{"big": 123456789012345678901234567890, "nan": NaN, "s": "\\ud800", "f": 0.1}'
    got = _loads(text)
    assert got["big"] == 123456789012345678901234567890
    assert math.isnan(got["nan"])
    assert got["s"] == json.loads(text)["s"]
    assert got["f"] == 0.1
    assert _loads('{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}
