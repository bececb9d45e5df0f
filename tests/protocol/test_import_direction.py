"""Imports point one way: neurons -> miner/validator -> protocol/node -> training/storage/chain
(lazy imports included; ``if TYPE_CHECKING`` ones left out), and no module imports itself back
through others (no cycles, lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "template"

# The layer of each part of the package: a module may import its own part and lower layers.
LAYERS = {
    "": 0,  # template/*.py: hparams, signing, fileio, retry, errors
    "presets": 0,
    "chain": 1,
    "storage": 1,
    "training": 1,
    "parallel": 4,  # the multi-GPU node wraps the miner's trainer and the validator's evaluator
    "protocol": 2,
    "node": 2,
    "miner": 3,
    "validator": 3,
    "localnet": 5,
    "commands": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """``template.miner.sync`` -> ``miner``; ``template.hparams`` -> ``""``."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return ""


def _statements(tree: ast.Module, top_level: bool):
    """Import statements: all of them (not under ``if TYPE_CHECKING``), or the module level."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try) or not top_level:
            todo.extend(ast.iter_child_nodes(node))


def imports_of(path: Path, module: str, top_level: bool = False) -> set[str]:
    """The ``template.*`` modules ``path`` imports (``top_level``: when it is loaded)."""
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    out: set[str] = set()
    for node in _statements(ast.parse(path.read_text(), str(path)), top_level):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("template"))
            continue
        if node.level:
            up = base[: len(base) - node.level + 1]
            target = ".".join(up + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("template"):
            continue
        out.add(target)
        for alias in node.names:  # ``from template.x import module``
            child = PACKAGE.parent / (target + "." + alias.name).replace(".", "/")
            if child.with_suffix(".py").is_file() or (child / "__init__.py").is_file():
                out.add(f"{target}.{alias.name}")
    return out


def graph(top_level: bool = False) -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        m: {t for t in imports_of(p, m, top_level) if t in files} - {m} for m, p in files.items()
    }


def test_every_part_has_a_layer():
    parts = {part_of(m) for m in graph()}
    assert parts <= set(LAYERS), sorted(parts - set(LAYERS))


def test_no_upward_imports():
    upward = []
    for module, targets in graph().items():
        mine = part_of(module)
        for t in targets:
            theirs = part_of(t)
            if theirs == mine:
                continue
            if LAYERS[theirs] > LAYERS[mine] or {mine, theirs} == {"miner", "validator"}:
                upward.append(f"{module} -> {t}")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()  # lazy imports too: an import at use time that closes a cycle hides one
    # package __init__ modules re-export their children: an edge into a package from its own
    # child is how ``from . import x`` resolves, not a cycle of the code
    for module in edges:
        edges[module] = {t for t in edges[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_imports_in_functions_and_relative_ones(tmp_path):
    """The parser finds lazy and relative imports (so the rules above can fail)."""
    sync = PACKAGE / "miner" / "sync.py"
    found = imports_of(sync, "template.miner.sync")
    assert {"template.protocol.window_apply", "template.miner.trainer"} <= found
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from template.miner import sync\n")
    assert "template.miner.sync" in imports_of(fake, "template.protocol.mod")
    assert "template.miner.sync" not in imports_of(fake, "template.protocol.mod", top_level=True)
