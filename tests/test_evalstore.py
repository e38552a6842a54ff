"""simqnas.evalstore: keys cover every field, round trips, corrupt entries are missing (with a warning)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from simqnas.evalstore import (
    MAX_ENTRY_BYTES,
    EvaluationStore,
    canonical_json,
    evaluation_key,
    file_sha256,
    safetensors_sha256,
)

FIELDS = {
    "supernet_sha256": "ab" * 32,
    "arch": {"num_layers": [4], "num_heads": [12, 8, 6, 12]},
    "policy": {"encoder.0.query": "int8", "encoder.0.key": "fp32"},
    "calibration": {"samples": 64, "batch_size": 8, "seed": 0},
    "validation": {"samples": 1000, "sha256": "cd" * 32},
    "max_length": 64,
    "metric": "accuracy",
}
RECORD = {"accuracy": 0.8125, "size_bytes": 12_345_678, "timings_s": {"quantize": 4.2}}


@pytest.fixture
def store(tmp_path: Path) -> EvaluationStore:
    return EvaluationStore(tmp_path / "evals")


def _put(store: EvaluationStore, fields: dict = FIELDS, record: dict = RECORD) -> str:
    key = evaluation_key(**fields)
    store.put(key, record, fields=fields)
    return key


def test_round_trip_at_a_sharded_path(store: EvaluationStore) -> None:
    key = _put(store)
    assert store.path(key) == store.root / key[:2] / f"{key}.json"
    assert store.get(key) == RECORD
    assert key in store
    assert json.loads(store.path(key).read_text())["fields"] == FIELDS


def test_missing_entry_is_none(store: EvaluationStore) -> None:
    assert store.get(evaluation_key(**FIELDS)) is None
    assert evaluation_key(**FIELDS) not in store


def _variants() -> list[tuple[str, object]]:
    return [
        ("supernet_sha256", "ac" * 32),
        ("arch", {"num_layers": [4], "num_heads": [12, 8, 6, 10]}),
        ("policy", {"encoder.0.query": "fp32", "encoder.0.key": "fp32"}),
        ("calibration", {"samples": 64, "batch_size": 8, "seed": 1}),
        ("validation", {"samples": 999, "sha256": "cd" * 32}),
        ("max_length", 128),
        ("metric", "latency"),
    ]


@pytest.mark.parametrize(("field", "value"), _variants())
def test_key_changes_when_any_field_changes(field: str, value: object) -> None:
    assert evaluation_key(**{**FIELDS, field: value}) != evaluation_key(**FIELDS)


def test_key_adds_the_host_and_ignores_dict_order() -> None:
    assert evaluation_key(**FIELDS, host={"cpu_model": "AMD EPYC"}) != evaluation_key(**FIELDS)
    assert evaluation_key(**dict(reversed(list(FIELDS.items())))) == evaluation_key(**FIELDS)
    reordered = {**FIELDS, "policy": dict(reversed(list(FIELDS["policy"].items())))}
    assert evaluation_key(**reordered) == evaluation_key(**FIELDS)


def test_key_rejects_nan_and_nothing() -> None:
    with pytest.raises(ValueError):
        evaluation_key(**{**FIELDS, "max_length": float("nan")})
    with pytest.raises(ValueError, match="no fields"):
        evaluation_key()


def test_put_checks_the_key(store: EvaluationStore) -> None:
    with pytest.raises(ValueError, match="not the key"):
        store.put("0" * 64, RECORD, fields=FIELDS)


def _edit(store: EvaluationStore, key: str, change) -> None:
    entry = json.loads(store.path(key).read_text())
    change(entry)
    store.path(key).write_text(json.dumps(entry))


def _change_record(entry: dict) -> None:
    entry["record"]["accuracy"] = 0.9


def _change_fields(entry: dict) -> None:
    entry["fields"]["max_length"] = 128


def _drop_checksum(entry: dict) -> None:
    del entry["checksum"]


def _newer_schema(entry: dict) -> None:
    entry["schema"] = 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_change_record, "checksum mismatch"),
        (_change_fields, "do not hash to its key"),
        (_drop_checksum, "fields are not"),
        (_newer_schema, "schema 2"),
    ],
)
def test_an_edited_entry_is_missing_with_a_warning(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture, change, problem: str
) -> None:
    key = _put(store)
    _edit(store, key, change)
    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        assert store.get(key) is None
    assert problem in caplog.text and key in caplog.text


def test_a_truncated_entry_is_missing_and_rewritable(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    key = _put(store)
    text = store.path(key).read_text()
    store.path(key).write_text(text[: len(text) // 2])
    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        assert store.get(key) is None
    assert "unreadable" in caplog.text
    _put(store)
    assert store.get(key) == RECORD


def test_an_entry_under_the_wrong_key_is_missing(store: EvaluationStore) -> None:
    key = _put(store)
    other = evaluation_key(**{**FIELDS, "max_length": 128})
    store.path(other).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(store.path(key), store.path(other))
    assert store.get(other) is None


def test_records_come_back_as_json_reads_them(store: EvaluationStore) -> None:
    record = {"per_class": {3: 0.5, 10: 0.25}, "shape": (1, 64)}
    key = _put(store, record=record)
    assert store.get(key) == {"per_class": {"3": 0.5, "10": 0.25}, "shape": [1, 64]}


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_safetensors_sha256_ignores_the_header_order_of_the_writer(tmp_path: Path) -> None:
    """Two saves of the same weights differ in bytes (the writer orders metadata per process); their content
    hash must not, or identical super-networks would get different evaluation keys."""
    tensors = {"a.weight": torch.arange(6.0).reshape(2, 3), "b.bias": torch.ones(2)}
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"family": "bert", "hyperparameters": "{}"})
    same = tmp_path / "y.safetensors"
    data = (tmp_path / "x.safetensors").read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    reordered = {key: header[key] for key in reversed(list(header))}
    reordered["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(reordered, separators=(",", ":")).encode().ljust(length)
    assert len(text) == length and text != data[8 : 8 + length]
    same.write_bytes(data[:8] + text + data[8 + length :])
    assert file_sha256(same) != file_sha256(tmp_path / "x.safetensors")
    assert safetensors_sha256(same) == safetensors_sha256(tmp_path / "x.safetensors")
    changed = tmp_path / "z.safetensors"
    save_file(
        {**tensors, "b.bias": torch.zeros(2)},
        str(changed),
        metadata={"family": "bert", "hyperparameters": "{}"},
    )
    assert safetensors_sha256(changed) != safetensors_sha256(tmp_path / "x.safetensors")


# ------------------------------------------------------------------ whatever is in an entry's place


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # opened blocking, reading it would wait for a writer for ever


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # endless zeros


def _folder(path: Path) -> None:
    path.mkdir()


def _oversized(path: Path) -> None:
    path.write_text(json.dumps({"pad": "x" * (MAX_ENTRY_BYTES + 1)}))


def _huge_integer(path: Path) -> None:
    path.write_text('{"schema": 1' + "0" * 5000 + "}")  # beyond Python's int-from-text limit


def _deeply_nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"schema": "\xff"}')


@pytest.mark.parametrize(
    "make", [_fifo, _device, _folder, _oversized, _huge_integer, _deeply_nested, _not_utf8]
)
def test_anything_in_an_entry_s_place_is_a_logged_miss(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture, make
) -> None:
    key = evaluation_key(**FIELDS)
    store.path(key).parent.mkdir(parents=True)
    make(store.path(key))
    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        assert store.get(key) is None
    assert "unreadable, treated as missing" in caplog.text and key in caplog.text


def _rechecksummed(store: EvaluationStore, key: str, change) -> None:
    """Edit an entry and give it a valid checksum again (the checksum catches damage, not types)."""

    def edit(entry: dict) -> None:
        change(entry)
        entry["checksum"] = hashlib.sha256(
            canonical_json({"fields": entry["fields"], "record": entry["record"]}).encode()
        ).hexdigest()

    _edit(store, key, edit)


def _boolean_schema(entry: dict) -> None:
    entry["schema"] = True  # equal to 1 in Python


def _record_a_list(entry: dict) -> None:
    entry["record"] = [0.5]


def _fields_a_string(entry: dict) -> None:
    entry["fields"] = "all of them"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_boolean_schema, "schema True is not 1"),
        (_record_a_list, "fields or record is not an object"),
        (_fields_a_string, "fields or record is not an object"),
    ],
)
def test_wrong_types_are_a_logged_miss(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture, change, problem: str
) -> None:
    key = _put(store)
    _rechecksummed(store, key, change)
    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        assert store.get(key) is None
    assert problem in caplog.text


def test_a_record_check_that_fails_on_the_record_is_a_miss(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid entry whose record makes the reader's check raise (a string where a number belongs)."""
    key = _put(store, record={"accuracy": "high"})
    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        assert store.get(key, check=lambda record: "low" if record["accuracy"] < 0.5 else None) is None
    assert "TypeError" in caplog.text
