"""knit's packages import downwards only (docs/architecture.md): no cycles, no layer reaching up."""

import ast
from pathlib import Path

import knit

SOURCE = Path(knit.__file__).parent

# Lowest first; a package may import only from layers below its own.
LAYERS = [
    {"host", "durations", "observability"},
    {"resources", "kafka", "control_token"},
    {"serving", "autoscaling", "eventing", "gateway", "dashboard"},
    {"admission"},
    {"control"},
    {"runtimes"},
    {"client", "new"},
    {"cli", "testing"},
    {"__main__"},
]
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def imports() -> set[tuple[str, str, str]]:
    """(importing package, imported package, file) for every import of knit.* in knit's source."""
    found = set()
    for file in SOURCE.rglob("*.py"):
        package = file.relative_to(SOURCE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(file.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "knit" and len(parts) > 1 and parts[1] != package:
                    found.add((package, parts[1], str(file.relative_to(SOURCE))))
    return found


def test_every_package_has_a_layer():
    packages = {
        path.name.removesuffix(".py")
        for path in SOURCE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists()) or (path.suffix == ".py" and path.name != "__init__.py")
    }
    assert packages == set(LAYER_OF)


def test_packages_import_only_from_layers_below():
    upward = sorted(
        f"{file}: {package} (layer {LAYER_OF[package]}) imports {imported} (layer {LAYER_OF[imported]})"
        for package, imported, file in imports()
        if LAYER_OF[imported] >= LAYER_OF[package]
    )
    assert upward == []


def test_the_check_sees_the_imports_it_judges():
    # the walk finds real edges, so an empty list above means something
    edges = {(package, imported) for package, imported, _ in imports()}
    assert {("cli", "runtimes"), ("runtimes", "control"), ("control", "eventing"), ("kafka", "host")} <= edges
