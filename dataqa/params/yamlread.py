"""Reading a params file strictly: UTF-8, bounded size and depth, no duplicate keys.

``yaml.safe_load`` silently keeps the last of two equal keys (a second ``scan:`` section
replaces the first), recurses once per nesting level (``[[[[...`` 100k deep ends in a
RecursionError) and the file is read whatever its encoding. :func:`read_yaml` makes each
of these a :class:`ParamsError` naming the file, line or key. Only plain YAML types are
built (``SafeLoader``): no object construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dataqa.errors import ParamsError

MAX_BYTES = 1 << 20  # a params file is configuration: 1 MiB is far beyond any real one
MAX_DEPTH = 32  # nesting levels of mappings/lists; dataqa's own schema uses 4


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys and deep nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        depth = getattr(self, "_dataqa_depth", 0) + 1
        if depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ParamsError(f"{self.name}: line {mark.line + 1}: nested more than "
                              f"{MAX_DEPTH} levels deep")
        self._dataqa_depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._dataqa_depth = depth - 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if first is not None:
                raise ParamsError(f"{self.name}: line {line}: key {key!r} appears twice "
                                  f"in one mapping (first on line {first}); YAML would "
                                  f"silently keep the last: merge them")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; ParamsError for anything but clean UTF-8 YAML."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ParamsError(f"{path}: {size} bytes; a params file holds at most {MAX_BYTES}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ParamsError(f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not "
                          f"UTF-8; save the file as UTF-8") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
