"""Reading the YAML files a user writes (workflow configs, space files) strictly, in bounded time.

`yaml.safe_load` keeps the last of two equal keys (a second `experiments:` block silently replaces the
first), expands aliases without limit (an "alias bomb" of a few lines stands for 10^9 values, and anything
that walks or prints it never ends) and raises a traceback on a file that is not UTF-8. `load_yaml` refuses
all three with one line naming the file, the key and the lines.
"""

from __future__ import annotations

import codecs
import math
import reprlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

#: values (scalars and containers, counted as if every alias were written out) a file may stand for; the
#: largest shipped config and space stand for a few thousand
MAX_VALUES = 1_000_000

_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = 4
_SHORT.maxlevel = 2


class YamlError(ValueError):
    """A YAML file that cannot be read as intended; the message is one line naming the file."""


def short_repr(value: Any) -> str:
    """A repr of at most about 100 characters, whatever the value's size (also for huge integers)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about 10^{math.floor(value.bit_length() * math.log10(2))}"
    return _SHORT.repr(value)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (merge keys `<<` may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if first is not None:
                raise YamlError(f"duplicate key {short_repr(key)} (lines {first} and {line})")
        return super().construct_mapping(node, deep=deep)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.keys()
        yield from value.values()
    elif isinstance(value, list | tuple):
        yield from value


def expanded_size(value: Any, limit: int = MAX_VALUES) -> int:
    """The number of values `value` stands for when every shared container is counted at each place it
    appears (as a YAML alias is), in time linear in the distinct containers; stops counting above `limit`."""
    sizes: dict[int, int] = {}
    # iterative post-order walk, so that deep nesting cannot exhaust the stack
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes or not isinstance(node, dict | list | tuple):
            continue
        if done:
            total = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            sizes[id(node)] = min(total, limit + 1)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes.get(id(value), 1)


def check_expansion(value: Any, where: str, limit: int = MAX_VALUES) -> None:
    """Refuse a value that stands for more than `limit` values (an alias bomb)."""
    if expanded_size(value, limit) > limit:
        raise YamlError(
            f"{where}: stands for more than {limit:,} values once its aliases are expanded "
            "(a YAML alias bomb?); write the values out"
        )


def _decoded(path: Path) -> str:
    data = path.read_bytes()
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise YamlError(f"{path}: {encoding} text; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start}); "
            "save it as UTF-8"
        ) from None


def load_yaml(path: str | Path) -> Any:
    """The content of a YAML (or JSON) file; YamlError naming the file for a file that is unreadable, not
    UTF-8, not valid YAML, has a key twice in one mapping, or whose aliases expand beyond `MAX_VALUES`."""
    path = Path(path)
    try:
        text = _decoded(path)
    except OSError as error:
        raise YamlError(f"{path}: cannot read ({error.strerror or error})") from None
    loader = _StrictLoader(text)
    try:
        value = loader.get_single_data()
    except YamlError as error:
        raise YamlError(f"{path}: {error}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise YamlError(f"{path}: not valid YAML ({error.problem or error.context}{where})") from None
    except yaml.YAMLError as error:
        raise YamlError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    except RecursionError:
        raise YamlError(f"{path}: nested too deeply to read") from None
    except ValueError as error:  # an integer beyond Python's int-from-string limit
        raise YamlError(f"{path}: a number too long to read ({str(error).splitlines()[0]})") from None
    finally:
        loader.dispose()
    check_expansion(value, str(path))
    return value
