"""`load_yaml`: YAML from an untrusted file with bounded bytes, nodes and nesting.

``yaml.safe_load`` shares an aliased node instead of copying it, so an alias bomb (``&a [*a, *a, ...]``
nested nine times) loads in microseconds, and then every consumer that walks the data (validation,
``json.dumps``, a model dump) expands it to billions of elements. This loader composes the node graph
first, counts the elements the data would have once expanded (each node once, memoized, so the count
itself is linear), and refuses before anything is constructed. Light (yaml only): the command line
reads run directories with it before importing torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a search config is a few hundred bytes; 1 MiB leaves room for long lists
MAX_NODES = 100_000  # scalars, lists and mappings after alias expansion
MAX_DEPTH = 100


_BOOL = "tag:yaml.org,2002:bool"


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads a bare ``on`` / ``off`` as text: in a config they are choices
    (a memory cell's forget gate ``on | coupled | off``, ``hyper.proxy: off | skip``), which YAML 1.1
    turns into true / false; yes / no / true / false stay booleans."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE)$"), list("yYnNtTfF"))


class YamlInputError(ValueError):
    """A YAML file that cannot be used; ``str()`` names the file and what is wrong."""


def load_yaml(path: str | Path, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """The data of the YAML file ``path``; raises `YamlInputError` for a file that is too large, not
    UTF-8, not YAML, nested deeper than `MAX_DEPTH`, recursive, or more than ``max_nodes`` elements."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise YamlInputError(f"{file}: {size:,} bytes, more than the {max_bytes:,} a config may have")
        raw = file.read_bytes()
    except OSError as exc:
        raise YamlInputError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(f"{file}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return loads(text, str(file), max_nodes=max_nodes)


def loads(text: str, source: str = "<text>", *, max_nodes: int = MAX_NODES) -> Any:
    """`load_yaml` for text already read."""
    loader = _ConfigLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlInputError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None
        except yaml.YAMLError as exc:
            raise YamlInputError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if node is None:
            return None
        _check_size(node, source, max_nodes)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:  # construction: e.g. an unknown tag
        raise YamlInputError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, source: str, max_nodes: int) -> None:
    """Count the elements ``root`` expands to (iteratively; shared nodes by memo) and refuse deep,
    recursive or oversized documents."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > max_nodes:
                raise YamlInputError(f"{source}: more than {max_nodes:,} elements once its aliases are expanded; "
                                     "write the values out, without anchors that repeat large parts")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlInputError(f"{source}: an alias refers to a node that contains it (recursive data)")
        if depth > MAX_DEPTH:
            raise YamlInputError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)")
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
