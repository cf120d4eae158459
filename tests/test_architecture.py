"""The layer rule, read from the imports: no arrow from a lower layer to a higher one, no circle.

Layers (docs/architecture.md): core < embeddings < inference, diagnostics, solvers < report
< pipeline < cli.  A module may import its own part and the parts below it; plugins
(``simulators.*``) import only the core and the diagnostics; the core names no plugin.
Every ``import`` counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = {"errors", "simulator", "options", "priors", "random", "store", "store_format", "campaign",
        "device",
        "provenance", "user_priors",
        "registry", "atomic", "outputs", "user_arrays", "poisson_cpu", "analysis", "__init__",
        "executor", "hpc", "rows", "store_batches", "operators", "inverse_problems",
        "weights_files", "plugins", "reference_mcmc", "benchmark_references"}
RANK = {"core": 0, "embeddings": 1, "inference": 2, "diagnostics": 2, "solvers": 2,
        "report": 3, "pipeline": 4, "cli": 5}
PLUGIN_MAY_IMPORT = {"core", "diagnostics"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved):
    ``from pkg import name`` depends on ``pkg.name`` when that is a module, else on ``pkg``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in modules else mod)
    return out


def _part(module: str) -> str | None:
    """The part of an sbi_astro module, ``"plugin"`` for simulators, ``None`` otherwise."""
    parts = module.split(".")
    if parts[0] == "simulators":
        return "plugin"
    if parts[0] != "sbi_astro":
        return None
    if len(parts) == 1 or parts[1] in CORE:
        return "core"
    return parts[1] if parts[1] in RANK else None


def _sources() -> dict[str, Path]:
    files = [*ROOT.glob("sbi_astro/**/*.py"), *ROOT.glob("simulators/**/*.py")]
    return {_module_name(p): p for p in files}


SOURCES = _sources()
GRAPH = {m: {i for i in _imports(p, set(SOURCES)) if i in SOURCES} for m, p in SOURCES.items()}


def test_every_sbi_astro_module_has_a_layer():
    unknown = sorted(m for m in SOURCES if m.startswith("sbi_astro") and _part(m) is None)
    assert not unknown, f"modules outside the layer map (add them to docs/architecture.md): {unknown}"


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_imports_go_down_only(module):
    part = _part(module)
    bad = []
    for target in sorted(GRAPH[module]):
        tpart = _part(target)
        if part == "plugin":
            ok = tpart in PLUGIN_MAY_IMPORT or target.split(".")[:2] == module.split(".")[:2]
        elif tpart == "plugin":
            ok = False  # the library never imports a plugin
        else:
            ok = tpart == part or RANK[tpart] < RANK[part]
        if not ok:
            bad.append(f"{target} ({tpart})")
    assert not bad, f"{module} ({part}) imports upwards or sideways: {bad}"


def test_no_import_cycles():
    """Tarjan's strongly connected components of the module graph: all singletons."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w == v:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_core_names_no_plugin_parameter():
    """No module of the library mentions a plugin's name or a plugin-only parameter."""
    plugin_words = ["cluster_gravothermal", "noise_amp", "log10_N", "lensing_sie",
                    "xray_thermal", "theta_E", "chandra"]
    hits = []
    for module, path in SOURCES.items():
        if not module.startswith("sbi_astro"):
            continue
        text = path.read_text()
        hits += [f"{module}: {w}" for w in plugin_words if w in text]
    assert not hits, hits
