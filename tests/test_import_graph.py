"""kmtl's module-level imports form no cycle, and layers never import the
feature specs (the architecture's layering)."""

import ast
import pathlib

import kmtl

ROOT = pathlib.Path(kmtl.__file__).parent


def _module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
    """Module -> the kmtl modules its top-level statements import."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (
                node.module or ""
            ).startswith("kmtl"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                deps |= {
                    a.name for a in node.names if a.name.startswith("kmtl")
                }
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    state = {}  # 1: on the stack, 2: done

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_layers_do_not_import_features():
    graph = _import_graph()
    offenders = {
        module: sorted(d for d in deps if d.startswith("kmtl.features"))
        for module, deps in graph.items()
        if module.startswith("kmtl.layers")
    }
    assert not {m: d for m, d in offenders.items() if d}
