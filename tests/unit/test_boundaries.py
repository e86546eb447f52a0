"""The library stays free of orchestration: src/driftloop never imports prefect."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "driftloop"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_library_module_imports_prefect():
    offenders = [p.name for p in SRC.glob("*.py") if "prefect" in _imported_modules(p)]
    assert offenders == []


def test_each_third_party_system_has_exactly_one_adapter():
    owners = {lib: sorted(p.stem for p in SRC.glob("*.py") if lib in _imported_modules(p))
              for lib in ("great_expectations", "mlflow", "skops", "fastapi", "uvicorn", "prometheus_client")}
    assert owners == {"great_expectations": ["validation"], "mlflow": ["registry"], "skops": ["model_files"],
                      "fastapi": ["serving"], "uvicorn": ["serving"], "prometheus_client": ["exporter"]}


def test_no_code_loads_a_model_through_mlflow_s_own_loader():
    """MLflow's loaders trust the artifact store's MLmodel file; driftloop loads through its pin alone."""
    everything = [*SRC.glob("*.py"), *(SRC.parent / "driftloop_flows").glob("*.py")]
    offenders = [p.name for p in everything if any(f"{flavor}.load_model" in p.read_text() for flavor in ("sklearn", "pyfunc"))]
    assert offenders == []


def test_importing_the_whole_library_does_not_load_prefect():
    code = (
        "import sys, driftloop.cli, driftloop.registry, driftloop.validation, driftloop.drift, driftloop.policy, driftloop.promotion, driftloop.ledger;"
        "sys.exit('prefect' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
