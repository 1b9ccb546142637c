"""CheckKey: its hash is computed once, and it behaves as the frozen dataclass it was."""

from __future__ import annotations

import copy
import dataclasses
import pickle

from dynserver.types import CheckKey


def test_check_key_hash_is_the_fields_hash_and_equal_keys_are_one_key() -> None:
    key = CheckKey("web", "192.0.2.1", 8080, None, "/health")
    same = CheckKey("web", "192.0.2.1", 8080, None, "/health")
    assert key == same and hash(key) == hash(same) == hash(("web", "192.0.2.1", 8080, None, "/health"))
    assert {key: 1}[same] == 1
    moved = dataclasses.replace(key, port=8081)
    assert moved != key and hash(moved) == hash(("web", "192.0.2.1", 8081, None, "/health"))
    assert repr(key) == "CheckKey(monitor='web', address='192.0.2.1', port=8080, host=None, path='/health')"
    for twin in (pickle.loads(pickle.dumps(key)), copy.copy(key), copy.deepcopy(key)):
        assert twin == key and hash(twin) == hash(key)
