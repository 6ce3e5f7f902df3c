"""Reading YAML safely: PyYAML's safe loader, refusing duplicate keys, oversized files, alias
bombs and recursive aliases, each as a one-line BenchError naming the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from t2i_bench.errors import BenchError
from t2i_bench.files import read_text

#: Largest YAML file read, and most nodes it may expand to (anchors and aliases counted as
#: often as they are used): a bigger file or an alias bomb is refused before it is built.
MAX_YAML_BYTES = 10 * 1024 * 1024
MAX_YAML_NODES = 1_000_000


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class says so
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in ``root`` with every alias expanded (memoised, so it costs one pass); stops
    past ``limit``. A recursive alias is a YAMLError."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            active.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if id(node) in active:
            raise yaml.composer.ComposerError(
                None, None, "recursive alias (a node that contains itself)", node.start_mark
            )
        active.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise yaml.composer.ComposerError(
                    None, None, "recursive alias (a node that contains itself)", child.start_mark
                )
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def load_yaml(path: Path, what: str = "YAML") -> Any:
    """Read a YAML file: a regular UTF-8 file of at most MAX_YAML_BYTES, no duplicate keys,
    at most MAX_YAML_NODES once aliases are expanded; every problem is one BenchError line
    (``what`` names the file's role)."""
    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
                raise BenchError(
                    f"YAML expands to more than {MAX_YAML_NODES:,} values through its aliases "
                    "(an alias bomb?); write the values out or use fewer aliases",
                    path,
                )
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise BenchError(f"{where}{problem}", path) from None
    except RecursionError:
        raise BenchError("YAML nested too deeply", path) from None
