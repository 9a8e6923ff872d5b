"""Threads, devices and OpenMP's wait policy (geosound.runtime, ``--threads``/``--device``).

What a setting does is checked where it lands: torch's thread count inside a CLI process that
ran a real command, the OpenMP runtime's own report of its wait policy (``OMP_DISPLAY_ENV``),
the thread count a real Dask worker process gets, the device an encoder and a bank pick up.
Process-wide settings are changed only in subprocesses, or with ``monkeypatch`` undoing them.
The GPU tests run where torch or faiss sees a GPU and skip with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from geosound import runtime
from geosound.errors import InputError

NO_CUDA = "no CUDA device: torch was built without CUDA or sees no GPU"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
needs_no_cuda = pytest.mark.skipif(
    torch.cuda.is_available(), reason="a CUDA device is present: --device cuda is accepted here"
)
needs_faiss_gpu = pytest.mark.skipif(
    not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0,
    reason="faiss has no GPU here (the `gpu` extra, faiss-gpu, and a GPU are needed)",
)

# Every long command that takes --threads and --device, with the arguments it needs to parse.
LONG_COMMANDS = {
    "map": ["map", "scene.tif", "-o", "out"],
    "synthesize": ["synthesize", "--bank", "bank", "--lon", "0", "--lat", "0", "-o", "a.wav"],
    "train": ["train", "-o", "run"],
    "index build": ["index", "build", "clips", "-o", "bank"],
    "index search": ["index", "search", "bank", "--text", "birds"],
    "audio embed": ["audio", "embed", "tone.wav", "-o", "x.npz"],
    "sonify": ["sonify", "-o", "pairs.parquet"],
    "evaluate": ["evaluate"],
}


def tone(path: Path) -> Path:
    """Half a second of 440 Hz at 16 kHz."""
    t = np.arange(8000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    return path


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: process-wide settings stay out of the test process."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def embed_in_cli(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> dict:
    """Run ``geosound audio embed`` through the CLI's entry point, then report its process.

    Returns what the process looked like after the command: torch's threads, the thread
    variables, the wait policy; and the stderr (where ``OMP_DISPLAY_ENV`` writes).
    """
    clip, out = tone(tmp_path / "tone.wav"), tmp_path / "vectors.npz"
    argv = ["audio", "embed", str(clip), "-o", str(out), "--progress", "none", *options]
    done = run_python(
        f"""
        import json, os
        from geosound.cli.app import main
        main({argv!r})
        import torch
        print(json.dumps({{
            "threads": torch.get_num_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "policy": os.environ.get("OMP_WAIT_POLICY"),
            "written": os.path.exists({str(out)!r}),
        }}))
        """,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


# --------------------------------------------------------------------------- threads


def test_threads_option_sets_torch_threads_in_the_cli_process(tmp_path: Path, monkeypatch):
    # One more than the cores: never what torch would pick by itself.
    wanted = (os.cpu_count() or 1) + 1
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    seen = embed_in_cli(tmp_path, "--threads", str(wanted), env={"OMP_DISPLAY_ENV": "verbose"})
    assert seen["written"]
    assert seen["threads"] == wanted
    assert seen["omp"] == str(wanted)  # for the processes it starts
    # The CLI's default wait policy reached the OpenMP runtime itself: libgomp reports it
    # when it loads, and PASSIVE means no spinning (GOMP_SPINCOUNT 0; 300000 by default).
    assert seen["policy"] == "PASSIVE"
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in seen["stderr"]
    assert "GOMP_SPINCOUNT = '0'" in seen["stderr"]


def test_a_wait_policy_the_user_set_is_kept(tmp_path: Path):
    seen = embed_in_cli(tmp_path, env={"OMP_WAIT_POLICY": "ACTIVE", "OMP_DISPLAY_ENV": "verbose"})
    assert seen["policy"] == "ACTIVE"
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in seen["stderr"]
    assert "GOMP_SPINCOUNT = '0'" not in seen["stderr"]


@pytest.mark.parametrize("command", sorted(LONG_COMMANDS))
def test_threads_zero_is_a_usage_error(command: str, tmp_path: Path, run_cli):
    result = run_cli(*LONG_COMMANDS[command], "--threads", "0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geosound: error:"), result.stderr
    assert "'--threads'" in lines[0]
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to tell 2 threads from 1")
def test_dask_workers_inherit_threads_and_wait_policy():
    # The cluster is made as geosound.mapping.region.run_chunks makes it; Dask's nannies set
    # OMP_NUM_THREADS=1 in workers unless the environment holds it already. A worker's torch
    # sizes its pool from the environment, which it caps at the cores: hence 2, not more.
    done = run_python(
        """
        import json, os
        os.environ.pop("OMP_WAIT_POLICY", None)
        from geosound import runtime
        runtime.set_process_defaults()
        runtime.set_threads(2)
        from dask.distributed import Client, LocalCluster

        def look():
            import torch
            return os.environ.get("OMP_WAIT_POLICY"), torch.get_num_threads()

        cluster = LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with Client(cluster) as client:
            (seen,) = client.run(look).values()
        cluster.close()
        print(json.dumps(seen))
        """
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["PASSIVE", 2]


def test_set_threads_refuses_zero():
    with pytest.raises(InputError, match="--threads: needs at least 1 thread, got 0"):
        runtime.set_threads(0, "--threads")


# --------------------------------------------------------------------------- devices


@needs_no_cuda
def test_device_cuda_without_cuda_is_one_line(tmp_path: Path, run_cli):
    clip, out = tone(tmp_path / "tone.wav"), tmp_path / "x.npz"
    result = run_cli("audio", "embed", str(clip), "-o", str(out), "--device", "cuda")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU visible"
    assert line.startswith(f"geosound: error: --device cuda: no CUDA device: {why}"), line
    assert not out.exists()


@needs_no_cuda
def test_train_device_cuda_is_refused_before_anything_runs(tmp_path: Path, run_cli):
    result = run_cli("train", "-o", str(tmp_path / "run"), "--device", "cuda", "--progress", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"].startswith(
        "--device cuda: no CUDA device"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_resolve_device_names():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    for bad in ("tpu", "cuda:x", "cuda:", ""):
        with pytest.raises(InputError, match="--device: unknown device"):
            runtime.resolve_device(bad, "--device")


@needs_no_cuda
def test_resolve_cuda_without_cuda_says_why():
    with pytest.raises(InputError, match=r"^--device cuda:1: no CUDA device: "):
        runtime.resolve_device("cuda:1", "--device")


def test_the_process_device_reaches_encoders_and_workers(monkeypatch):
    from geosound.encoders import get_encoder

    monkeypatch.delenv(runtime.DEVICE_VARIABLE, raising=False)
    monkeypatch.delenv(runtime.CUBLAS_WORKSPACE[0], raising=False)  # use_device may set it
    assert get_encoder("minilm-l6").device == torch.device("cpu")
    assert runtime.requested_cuda_index() is None
    monkeypatch.setenv(runtime.DEVICE_VARIABLE, "cpu")
    assert runtime.use_device("auto", "--device").type == os.environ[runtime.DEVICE_VARIABLE]
    monkeypatch.setenv(runtime.DEVICE_VARIABLE, "cuda:1")
    assert runtime.requested_cuda_index() == 1  # read without asking torch
    if not torch.cuda.is_available():
        # An encoder built without a device takes the process's; no GPU: one clear error.
        with pytest.raises(InputError, match=r"^GEOSOUND_DEVICE cuda:1: no CUDA device"):
            get_encoder("minilm-l6")
    monkeypatch.setenv(runtime.DEVICE_VARIABLE, "gpu")
    with pytest.raises(InputError, match="GEOSOUND_DEVICE: unknown device 'gpu'"):
        runtime.requested_cuda_index()


def test_lightning_accelerator_for_the_cpu():
    assert runtime.lightning_accelerator(torch.device("cpu")) == {
        "accelerator": "cpu",
        "devices": 1,
    }


def test_describe_device_names_the_cpu_and_wait_policy(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_VARIABLE, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    line = runtime.describe_device()
    assert line.startswith(f"cpu: {runtime.cpu_name()}, ")
    assert f"torch {torch.__version__} on {torch.get_num_threads()} threads" in line
    assert line.endswith("OMP_WAIT_POLICY=PASSIVE")


def test_a_bank_asked_for_a_gpu_searches_on_the_cpu_where_faiss_has_none(monkeypatch):
    from geosound.retrieval import AudioBank

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    table = pd.DataFrame({"path": [f"clip{i}.wav" for i in range(300)]})
    queries = vectors[:5] + 0.01
    monkeypatch.delenv(runtime.DEVICE_VARIABLE, raising=False)
    cpu_hits = AudioBank.build(vectors, table, "aisfx@1", kind="flat").search(queries, k=4)
    monkeypatch.setenv(runtime.DEVICE_VARIABLE, "cuda")
    bank = AudioBank.build(vectors, table, "aisfx@1", kind="flat")
    hits = bank.search(queries, k=4)
    assert bank._searcher is not None
    expected_gpu = 0 if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() else None
    assert bank._searcher.gpu == expected_gpu
    np.testing.assert_array_equal(hits.indices, cpu_hits.indices)
    np.testing.assert_allclose(hits.scores, cpu_hits.scores, atol=1e-5)
    assert list(hits.indices[:, 0]) == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- on a GPU


@needs_cuda
def test_an_encoder_on_cuda_returns_cpu_float32_like_the_cpu(monkeypatch):
    from geosound.encoders import get_encoder

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    images = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    on_cpu = get_encoder("efficientnet-lite0", device="cpu", backend="torch").encode(images)
    on_gpu = get_encoder("efficientnet-lite0", device="cuda").encode(images)
    for name in ("pooled", "tokens", "mask"):
        got = getattr(on_gpu, name)
        assert got.device.type == "cpu"
        assert got.dtype == getattr(on_cpu, name).dtype
    assert on_gpu.pooled.dtype == torch.float32
    torch.testing.assert_close(on_gpu.pooled, on_cpu.pooled, atol=1e-4, rtol=1e-4)


@needs_cuda
def test_lightning_accelerator_for_cuda():
    device = runtime.resolve_device("cuda:0")
    assert runtime.lightning_accelerator(device) == {"accelerator": "cuda", "devices": [0]}
    assert runtime.describe_device(device).startswith("cuda:0: ")


@needs_faiss_gpu
def test_a_bank_asked_for_a_gpu_searches_on_it(monkeypatch):
    from geosound.retrieval import AudioBank

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((1000, 32)).astype(np.float32)
    table = pd.DataFrame({"path": [f"clip{i}.wav" for i in range(1000)]})
    monkeypatch.delenv(runtime.DEVICE_VARIABLE, raising=False)
    cpu_hits = AudioBank.build(vectors, table, "aisfx@1", kind="flat").search(vectors[:20], k=5)
    monkeypatch.setenv(runtime.DEVICE_VARIABLE, "cuda")
    bank = AudioBank.build(vectors, table, "aisfx@1", kind="flat")
    hits = bank.search(vectors[:20], k=5)
    assert bank._searcher is not None and bank._searcher.gpu == 0
    np.testing.assert_array_equal(hits.indices, cpu_hits.indices)
    np.testing.assert_allclose(hits.scores, cpu_hits.scores, atol=1e-4)
