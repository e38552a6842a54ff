"""Content-addressed store of evaluations, shared by every algorithm, seed and rerun of a super-network.

The key is the sha256 of the canonical JSON of everything that changes the numbers (super-network content
hash, architecture, policy, data and calibration settings, sequence length, metric kind; latency adds the
host), so an evaluation is reused exactly when it would be recomputed identically. Entries live at
`root/{key[:2]}/{key}.json`, written atomically, and carry their key fields and a checksum of the record; an
entry that fails validation (truncated, edited, wrong key, or a record whose content the reader's check
refuses) is logged as a warning and treated as missing: it is evaluated again, never trusted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simqnas.io import write_json_atomic
from simqnas.yamlfile import short_repr

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: an entry is a few hundred bytes; anything much larger in its place is not one
MAX_ENTRY_BYTES = 1 << 20
_ENTRY_FIELDS = {"schema", "key", "fields", "record", "checksum"}

#: validates a record's content: what is wrong with it, or None
RecordCheck = Callable[[dict[str, Any]], "str | None"]


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, no NaN (it has no canonical form)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def evaluation_key(**fields: Any) -> str:
    """The key of an evaluation: sha256 of the canonical JSON of `fields` (JSON-able values only)."""
    if not fields:
        raise ValueError("evaluation_key: no fields")
    return _sha256(canonical_json(fields))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The content hash of a file (e.g. the super-network weights) to put in a key."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safetensors_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The content hash of a safetensors file, independent of how its writer ordered the header.

    The safetensors writer emits the metadata (and the tensor index) from a hash map whose order changes from
    process to process, so two saves of the same weights differ in their bytes; hashing the header as
    canonical JSON makes equal content give equal keys across runs.
    """
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = f.read(8)
        try:
            header = json.loads(f.read(int.from_bytes(size, "little")))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a safetensors file ({error})") from None
        digest.update(canonical_json(header).encode())
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class EvaluationStore:
    """Evaluations under a directory, one JSON file per key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def put(self, key: str, record: dict[str, Any], *, fields: dict[str, Any]) -> None:
        """Store `record` under `key`, which must be `evaluation_key(**fields)`."""
        if evaluation_key(**fields) != key:
            raise ValueError(f"evalstore: key {key} is not the key of the given fields")
        # the checksum covers what a reader will parse (tuples become lists, int dict keys strings)
        fields, record = json.loads(canonical_json(fields)), json.loads(canonical_json(record))
        entry = {
            "schema": SCHEMA_VERSION,
            "key": key,
            "fields": fields,
            "record": record,
            "checksum": _sha256(canonical_json({"fields": fields, "record": record})),
        }
        write_json_atomic(self.path(key), entry)

    def get(self, key: str, check: RecordCheck | None = None) -> dict[str, Any] | None:
        """The record stored under `key`, or None if absent or invalid (an invalid entry is logged).

        `check` validates the record's content (e.g. an accuracy within [0, 1]); it returns what is wrong,
        or None. A failing entry is treated as missing, so the caller evaluates it again and overwrites it.
        Whatever is in the entry's place (a FIFO, a device, a folder, a huge or deeply nested file, values
        of the wrong type), reading it never blocks, never raises and never reads more than
        `MAX_ENTRY_BYTES`.
        """
        path = self.path(key)
        try:
            entry = json.loads(_read_entry(path))
            problem = _problem(entry, key)
            if problem is None and check is not None:
                problem = check(entry["record"])
        except FileNotFoundError:
            return None
        except Exception as error:  # anything in the entry's place is a miss, never the end of a shard
            message = str(error).splitlines()[0] if str(error) else ""
            log.warning(
                "evalstore: %s: unreadable, treated as missing (%s: %s)", path, type(error).__name__, message
            )
            return None
        if problem:
            log.warning("evalstore: %s: %s, treated as missing", path, problem)
            return None
        return entry["record"]

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None


@dataclass
class StoredEvaluation:
    """One evaluation as a store knows it: its key fields, key, the check its records must pass, and its
    record (None: not stored yet, or the stored entry refused by the check)."""

    fields: dict[str, Any]
    key: str
    check: RecordCheck
    record: dict[str, Any] | None

    @classmethod
    def look_up(cls, store: EvaluationStore, fields: dict[str, Any], check: RecordCheck) -> StoredEvaluation:
        key = evaluation_key(**fields)
        return cls(fields, key, check, store.get(key, check=check))

    def put(self, store: EvaluationStore, record: dict[str, Any], what: str) -> None:
        """Store a fresh evaluation of `what` (e.g. "candidate 3"), refusing one that came back invalid:
        it would be reused forever."""
        problem = self.check(record)
        if problem:
            raise ValueError(f"{what}: the evaluation returned {problem}; not stored")
        store.put(self.key, record, fields=self.fields)
        self.record = record


def _read_entry(path: Path) -> str:
    """An entry's text: opened without blocking (a FIFO in its place would wait for a writer), only if it is
    a regular file, and only up to `MAX_ENTRY_BYTES`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError("not a regular file")
        data = f.read(MAX_ENTRY_BYTES + 1)
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError(f"larger than {MAX_ENTRY_BYTES} bytes")
    return data.decode()


def _problem(entry: Any, key: str) -> str | None:
    """Why an entry read from disk is not a valid evaluation of `key` (None if it is)."""
    if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
        return f"fields are not {sorted(_ENTRY_FIELDS)}"
    if type(entry["schema"]) is not int or entry["schema"] != SCHEMA_VERSION:  # True == 1: type first
        return f"schema {short_repr(entry['schema'])} is not {SCHEMA_VERSION}"
    if entry["key"] != key:
        return f"holds key {short_repr(entry['key'])}"
    if not isinstance(entry["fields"], dict) or not isinstance(entry["record"], dict):
        return "fields or record is not an object"
    try:
        if evaluation_key(**entry["fields"]) != key:
            return "fields do not hash to its key"
        checksum = _sha256(canonical_json({"fields": entry["fields"], "record": entry["record"]}))
    except ValueError as error:
        return f"not canonical JSON ({error})"
    if entry["checksum"] != checksum:
        return "checksum mismatch"
    return None
