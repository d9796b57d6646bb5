"""notebooks/colab_tpu.ipynb runs top to bottom on CPU (small settings) and shows its results."""

import os
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "colab_tpu.ipynb")


def _ensure_kernel(name: str = "python3") -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if name not in KernelSpecManager().find_kernel_specs():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--user"], check=True, timeout=120
        )


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def test_notebook_is_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "SMALL = None" in code[0].source


@pytest.mark.slow
def test_notebook_runs_on_cpu(tmp_path, monkeypatch):
    _ensure_kernel()
    # The kernel inherits this environment: small settings, CPU only, lenrl importable.
    monkeypatch.setenv("LENRL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=400, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    text = {i: _text(c) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    everything = "\n".join(text.values())
    assert "backend=cpu" in everything and "run size: small (smoke)" in everything
    assert "accuracy_before" in everything and "length_reduction" in everything
    workdir = tmp_path / "runs" / "colab"
    assert (workdir / "metrics.jsonl").stat().st_size > 0
    assert (workdir / "notebook_metrics.png").stat().st_size > 0
    assert (workdir / "export" / "config.json").exists()
    images = sum(
        "image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", [])
    )
    assert images >= 3  # the metrics plot, training.png, budget_curve.png
    sampled = [line for line in everything.splitlines() if line.startswith("answer (")]
    assert len(sampled) == 3, everything[-2000:]
    assert everything.count("gold: ") == 3 and "correct: " in everything
    # The exported weights were trained: completions take the task's form (random ones do not).
    assert any("</think> answer " in line for line in sampled), sampled
