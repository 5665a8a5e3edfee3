"""nets.companion.point_checkpoint: the resumable JSON checkpoint shared by the companion grid experiments."""
import json

import pytest

from nets.companion.point_checkpoint import fields_hash, load_points, save_points

SHAPE = (2, 3)
LAYOUT = (float, bool)


def test_saved_points_load_back_with_tuple_keys_and_no_temporary_left(tmp_path):
    path = tmp_path / "grid.json"
    points = {(0, 2): [0.75, False], (1, 0): [float("nan"), True]}
    save_points(path, "abc", {"trials": 2}, points)
    loaded = load_points(path, "abc", SHAPE, LAYOUT, "test grid")
    assert set(loaded) == {(0, 2), (1, 0)} and loaded[(0, 2)] == [0.75, False] and loaded[(1, 0)][1] is True
    content = json.loads(path.read_text())
    assert content["config"] == {"trials": 2} and set(content["points"]) == {"[0, 2]", "[1, 0]"}
    assert [p.name for p in tmp_path.iterdir()] == ["grid.json"]
    assert load_points(tmp_path / "absent.json", "abc", SHAPE, LAYOUT, "test grid") == {}


@pytest.mark.parametrize("points, needle", [
    ({"[0, 3]": [0.5, False]}, "point"),          # outside the grid
    ({"[0]": [0.5, False]}, "point"),             # wrong rank
    ({"[0, 1.0]": [0.5, False]}, "point"),        # a float index
    ({"[0, 1]": [True, False]}, "point"),         # a flag where a number belongs
    ({"[0, 1]": [0.5, 0]}, "point"),              # a number where a flag belongs
    ({"[0, 1]": [0.5]}, "point"),                 # too short
])
def test_a_point_that_does_not_fit_is_refused_naming_the_file_and_kind(tmp_path, points, needle):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"config_hash": "abc", "points": points}))
    with pytest.raises(ValueError, match=needle) as error:
        load_points(path, "abc", SHAPE, LAYOUT, "test grid")
    assert str(path) in str(error.value) and "not a test grid checkpoint" in str(error.value)


def test_another_configuration_is_refused(tmp_path):
    path = tmp_path / "grid.json"
    save_points(path, "abc", {}, {(0, 0): [0.5, False]})
    with pytest.raises(ValueError, match="belongs to another configuration"):
        load_points(path, "xyz", SHAPE, LAYOUT, "test grid")


def test_fields_hash_ignores_key_order_and_sees_values():
    assert fields_hash({"a": 1, "b": (2, 3)}) == fields_hash({"b": [2, 3], "a": 1})
    assert fields_hash({"a": 1}) != fields_hash({"a": 2}) and len(fields_hash({})) == 12
