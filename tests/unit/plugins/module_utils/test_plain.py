"""_plain.plain_data: runner types in, plain data out."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils._plain import plain_data


class TaggedStr(str):
    pass


class TaggedInt(int):
    pass


@pytest.mark.parametrize(("value", "expected"), [
    (TaggedStr("x"), "x"),
    (TaggedInt(3), 3),
    (True, True),
    (None, None),
    (1.5, 1.5),
    ((1, TaggedStr("a")), [1, "a"]),
    ({TaggedStr("k"): [TaggedInt(1)]}, {"k": [1]}),
])
def test_plain_types_come_out(value, expected):
    result = plain_data(value)
    assert result == expected
    assert type(result) is type(expected)


def test_other_types_pass_through_unless_strict():
    day = datetime.date(2026, 1, 1)
    assert plain_data({"d": day}) == {"d": day}
    assert plain_data({1: "a"}) == {1: "a"}
    assert plain_data({1: "a"}, strict=True) == {"1": "a"}
    with pytest.raises(TypeError, match="unsupported type date"):
        plain_data([day], strict=True)
