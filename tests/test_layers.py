"""The package's structure: folders by layer, imports one way (down), no import cycles, no private
names taken from another module. Every import counts, those inside functions too."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "maae_tf"

# The layer order, low to high: a module may import modules of its own layer and of lower ones.
# A module is in the layer of the longest prefix listed; the package's other top-level modules are
# the commands (`python -m maae_tf.<command>`), the top layer.
LAYERS = (
    ("base", ("maae_tf.attributes", "maae_tf.files", "maae_tf.config", "maae_tf.progress")),
    ("model", ("maae_tf.model",)),
    ("data", ("maae_tf.data",)),
    ("evaluation", ("maae_tf.evaluation",)),
    ("training", ("maae_tf.training",)),
    ("serving", ("maae_tf.serving",)),
    ("photos", ("maae_tf.photos",)),
    ("commands", ("maae_tf",)),
)


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} is in no layer"
    return best[1]


def imports(module: str):
    """(imported module, names taken from it, line) for every import of the package in `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "maae_tf":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "maae_tf":
                continue
            for alias in node.names:  # `from pkg import module` imports the module
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    yield sub, [], node.lineno
                else:
                    yield base, [alias.name], node.lineno


def graph():
    return {m: {target for target, _, _ in imports(m) if target in MODULES and target != m} for m in MODULES}


def upward(g) -> list[str]:
    return [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
            for m in sorted(g) for t in sorted(g[m]) if layer(t) > layer(m)]


def cycles(g) -> list[str]:
    found, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(g.get(m, ())):
            if state.get(t) == "open":
                found.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    return found


def private_names(module: str) -> list[str]:
    """`_name`s that `module` takes from another module of the package: imported by name, or read
    as an attribute of an imported module (`celeba._seeds`)."""
    found, aliases = [], {}
    for target, names, line in imports(module):
        found += [f"{target}.{n} (line {line})" for n in names if n.startswith("_") and target != module]
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maae_tf"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{aliases[node.value.id]}.{node.attr} (line {node.lineno})")
    return found


def test_every_module_has_a_layer():
    for m in MODULES:
        layer(m)


def test_imports_go_down_the_layers():
    problems = upward(graph())
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    problems = cycles(graph())
    assert not problems, "\n".join(problems)


def test_no_private_names_from_other_modules():
    problems = [f"{m}: {p}" for m in MODULES for p in private_names(m)]
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_fault():
    """The rules on made-up graphs: an arrow up the layers, a cycle inside one layer."""
    assert upward({"maae_tf.model.a": {"maae_tf.photos.b"}, "maae_tf.photos.b": {"maae_tf.model.a"}}) == [
        "maae_tf.model.a (model) imports maae_tf.photos.b (photos)"]
    assert upward({"maae_tf.photos.b": {"maae_tf.model.a", "maae_tf.config"}}) == []
    assert cycles({"maae_tf.data.a": {"maae_tf.data.b"}, "maae_tf.data.b": {"maae_tf.data.c"},
                   "maae_tf.data.c": {"maae_tf.data.a"}}) == [
        "maae_tf.data.a -> maae_tf.data.b -> maae_tf.data.c -> maae_tf.data.a"]
    assert cycles({"maae_tf.data.a": {"maae_tf.data.b"}, "maae_tf.data.b": set()}) == []
