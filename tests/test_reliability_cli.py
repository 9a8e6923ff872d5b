"""The CLI's one error contract, as a user (or the QGIS plugin) meets it (issue 14, item 5).

Every bad value is refused with exit code 2 and exactly one line on stderr that names the option
or the file, no traceback, and nothing left behind: no output, no hidden temporary file. With
``--progress json`` the last stdout line is ``{"error": ...}``, also when the arguments are refused
before the command starts. SIGTERM unwinds like Ctrl-C (exit 143, temporary files removed), and a
temporary file left by a killed run is removed by the next run that writes the same file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from geosound.atomic import atomic_path, remove_stale_temporaries, writer_tag

# The committed utm_uint16.tif: 100 x 80 px, x 500000..501000, y 5199200..5200000, EPSG:32632.
INSIDE_X, INSIDE_Y = "500500", "5199600"


def _closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead_pid() -> int:
    """The PID of a process that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout)


@pytest.fixture
def workspace(tmp_path: Path, data_raster) -> dict[str, str]:
    """Real small inputs in tmp_path, by the names the cases below use as ``{placeholders}``."""
    scene = data_raster("utm_uint16.tif", "scene.tif")
    (tmp_path / "notes.txt").write_text("field notes, not a raster or a model\n")
    (tmp_path / "garbage.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "existing.txt").write_text("a user's file\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "thesis.txt").write_text("a user's file in a user's folder\n")
    for name in ("folder.wav", "folder.tif", "folder.parquet", "folder.npz"):
        (tmp_path / name).mkdir()
    (tmp_path / "zero_epochs.yaml").write_text("epochs: 0\n")
    (tmp_path / "word_epochs.yaml").write_text("epochs: many\n")
    (tmp_path / "broken.yaml").write_text("epochs: [1, 2\n")
    return {
        "scene": str(scene),
        "tmp": str(tmp_path),
        "port": str(_closed_port()),
    }


def _files(root: Path) -> set[str]:
    """Every path under ``root`` (hidden ones too), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, one ``geosound: error:`` line on stderr naming every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("geosound: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in lines[0]
    return lines[0]


# fmt: off
S = "{scene}"
T = "{tmp}"
MAP = ("map", S, "-o", f"{T}/out", "-t", "birds")
SYNTH = ("synthesize", "--bank", f"{T}/folder", "--raster", S,
         "--x", INSIDE_X, "--y", INSIDE_Y, "--crs", "EPSG:32632", "-o", f"{T}/place.wav")
CHIP = ("chip", S, "--x", INSIDE_X, "--y", INSIDE_Y, "--crs", "EPSG:32632", "-o", f"{T}/c.tif")

# (case id, argv with {placeholders}, what the one error line must contain)
BAD_INPUT = [
    # geosound map: tiling, work units, Dask
    ("map-tile-0", (*MAP, "--tile", "0"), ["'--tile'"]),
    ("map-tile-negative", (*MAP, "--tile", "-64"), ["'--tile'"]),
    ("map-tile-larger-than-raster", (*MAP, "--tile", "100000"), ["scene.tif", "--tile 100000"]),
    ("map-stride-negative", (*MAP, "--stride", "-8"), ["'--stride'"]),
    ("map-stride-0", (*MAP, "--stride", "0"), ["'--stride'"]),
    ("map-chunk-rows-0", (*MAP, "--chunk-rows", "0"), ["'--chunk-rows'"]),
    ("map-retrieve-negative", (*MAP, "--retrieve", "-1"), ["'--retrieve'"]),
    ("map-workers-negative", (*MAP, "--workers", "-1"), ["'--workers'"]),
    ("map-tile-not-a-number", (*MAP, "--tile", "big"), ["'--tile'"]),
    ("map-tile-m-under-two-pixels", (*MAP, "--tile-m", "15"),
     ["scene.tif", "--tile-m 15", "smaller than two pixels"]),
    ("map-tile-m-larger-than-raster", (*MAP, "--tile-m", "900"),
     ["scene.tif", "--tile-m 900", "larger than the raster"]),
    ("map-tile-m-0", (*MAP, "--tile-m", "0"), ["'--tile-m'"]),
    ("map-tile-m-negative", (*MAP, "--tile-m", "-640"), ["'--tile-m'"]),
    ("map-tile-and-tile-m", (*MAP, "--tile", "64", "--tile-m", "640"), ["'--tile-m'", "--tile"]),
    ("map-hour-without-metadata", (*MAP, "--hour", "5"), ["'--hour'", "without location"]),
    ("map-month-without-metadata", (*MAP, "--month", "5"), ["'--month'", "without location"]),
    ("map-hour-24", (*MAP, "--hour", "24"), ["'--hour'", "[0, 24)"]),
    ("map-hour-a-word", (*MAP, "--hour", "dawn"), ["'--hour'", "dawn"]),
    ("map-month-13", (*MAP, "--month", "13"), ["'--month'"]),
    ("map-scheduler-unreachable", (*MAP, "--scheduler", "tcp://127.0.0.1:{port}"),
     ["'--scheduler'", "cannot reach"]),
    ("map-scheduler-malformed", (*MAP, "--scheduler", "http://example"), ["'--scheduler'"]),
    # geosound map: the area of interest
    ("map-bbox-inverted-x", (*MAP, "--bbox", "500800", "5199300", "500100", "5199800"),
     ["'--bbox'", "inverted"]),
    ("map-bbox-inverted-y", (*MAP, "--bbox", "500100", "5199800", "500800", "5199300"),
     ["'--bbox'", "inverted"]),
    ("map-bbox-zero-area", (*MAP, "--bbox", "500100", "5199300", "500100", "5199800"),
     ["'--bbox'", "zero area"]),
    ("map-bbox-antimeridian", (*MAP, "--bbox", "170", "-10", "-170", "10", "--bbox-crs",
     "EPSG:4326"), ["'--bbox'", "antimeridian"]),
    ("map-bbox-beyond-pole", (*MAP, "--bbox", "9", "45", "10", "95", "--bbox-crs", "EPSG:4326"),
     ["'--bbox'", "latitudes"]),
    ("map-bbox-nan", (*MAP, "--bbox", "nan", "0", "1", "1"), ["'--bbox'", "finite"]),
    ("map-bbox-crs-unknown-code", (*MAP, "--bbox", "0", "0", "1", "1", "--bbox-crs",
     "EPSG:99999"), ["'--bbox-crs'", "EPSG:99999"]),
    ("map-bbox-crs-nonsense", (*MAP, "--bbox", "0", "0", "1", "1", "--bbox-crs", "not-a-crs"),
     ["'--bbox-crs'", "not-a-crs"]),
    # geosound map: files
    ("map-out-is-a-file", ("map", S, "-o", f"{T}/existing.txt", "-t", "birds"), ["existing.txt"]),
    ("map-checkpoint-text-file", (*MAP, "--checkpoint", f"{T}/notes.txt"), ["notes.txt"]),
    ("map-checkpoint-garbage", (*MAP, "--checkpoint", f"{T}/garbage.bin"), ["garbage.bin"]),
    ("map-checkpoint-missing", (*MAP, "--checkpoint", f"{T}/missing.pt"), ["missing.pt"]),
    ("map-checkpoint-device", (*MAP, "--checkpoint", "/dev/null"),
     ["/dev/null", "not a regular file"]),
    ("map-raster-text-file", ("map", f"{T}/notes.txt", "-o", f"{T}/out", "-t", "birds"),
     ["notes.txt"]),
    ("map-audio-query-missing", (*MAP, "--audio", f"{T}/missing.wav"), ["missing.wav"]),
    # geosound chip
    ("chip-size-0", (*CHIP, "--size", "0"), ["'--size'"]),
    ("chip-size-negative", (*CHIP, "--size", "-5"), ["'--size'"]),
    ("chip-crs-unknown", ("chip", S, "--x", "1", "--y", "2", "--crs", "EPSG:99999", "-o",
     f"{T}/c.tif"), ["'--crs'", "EPSG:99999"]),
    ("chip-out-is-a-folder", ("chip", S, "--x", INSIDE_X, "--y", INSIDE_Y, "--crs",
     "EPSG:32632", "-o", f"{T}/folder.tif"), ["folder.tif", "is a folder"]),
    # geosound train
    ("train-epochs-negative", ("train", "-o", f"{T}/run", "--epochs", "-1"), ["'--epochs'"]),
    ("train-epochs-0", ("train", "-o", f"{T}/run", "--epochs", "0"), ["'--epochs'"]),
    ("train-seed-negative", ("train", "-o", f"{T}/run", "--seed", "-1"), ["'--seed'"]),
    ("train-config-binary", ("train", "-o", f"{T}/run", "--config", f"{T}/garbage.bin"),
     ["garbage.bin"]),
    ("train-config-not-a-mapping", ("train", "-o", f"{T}/run", "--config", f"{T}/notes.txt"),
     ["notes.txt"]),
    ("train-config-broken-yaml", ("train", "-o", f"{T}/run", "--config", f"{T}/broken.yaml"),
     ["broken.yaml"]),
    ("train-config-epochs-0", ("train", "-o", f"{T}/run", "--config", f"{T}/zero_epochs.yaml"),
     ["zero_epochs.yaml", "epochs"]),
    ("train-config-epochs-a-word", ("train", "-o", f"{T}/run", "--config",
     f"{T}/word_epochs.yaml"), ["word_epochs.yaml", "epochs"]),
    ("train-config-missing", ("train", "-o", f"{T}/run", "--config", f"{T}/missing.yaml"),
     ["missing.yaml"]),
    ("train-out-is-a-file", ("train", "-o", f"{T}/existing.txt"), ["existing.txt"]),
    # geosound evaluate
    ("evaluate-checkpoint-text-file", ("evaluate", "--checkpoint", f"{T}/notes.txt"),
     ["notes.txt", "--checkpoint"]),
    ("evaluate-compare-garbage", ("evaluate", "--compare", f"{T}/garbage.bin"),
     ["garbage.bin", "--compare"]),
    ("evaluate-work-is-a-file", ("evaluate", "--work", f"{T}/existing.txt"), ["existing.txt"]),
    ("evaluate-queries-stand-in-size-0", ("evaluate-queries", "--stand-in-size", "0"),
     ["'--stand-in-size'"]),
    ("evaluate-queries-checkpoint-garbage", ("evaluate-queries", "--checkpoint",
     f"{T}/garbage.bin"), ["garbage.bin"]),
    # geosound index
    ("index-build-kind-unknown", ("index", "build", f"{T}/folder", "-o", f"{T}/bank", "--kind",
     "fast"), ["'--kind'", "fast"]),
    ("index-build-out-is-a-file", ("index", "build", f"{T}/folder", "-o", f"{T}/existing.txt"),
     ["existing.txt"]),
    ("index-build-checkpoint-text-file", ("index", "build", f"{T}/folder", "-o", f"{T}/bank",
     "--checkpoint", f"{T}/notes.txt"), ["notes.txt"]),
    ("index-search-k-0", ("index", "search", f"{T}/folder", "--text", "birds", "-k", "0"),
     ["'-k'"]),
    ("index-search-bank-missing", ("index", "search", f"{T}/nobank", "--text", "birds"),
     ["nobank"]),
    # geosound synthesize
    ("synthesize-k-0", (*SYNTH, "--k", "0"), ["'--k'"]),
    ("synthesize-seconds-0", (*SYNTH, "--seconds", "0"), ["'--seconds'"]),
    ("synthesize-seconds-negative", (*SYNTH, "--seconds", "-3"), ["'--seconds'"]),
    ("synthesize-chip-size-0", (*SYNTH, "--chip-size", "0"), ["'--chip-size'"]),
    ("synthesize-crs-unknown", ("synthesize", "--bank", f"{T}/folder", "--raster", S, "--x",
     "1", "--y", "2", "--crs", "EPSG:99999", "-o", f"{T}/place.wav"),
     ["'--crs'", "EPSG:99999"]),
    ("synthesize-out-is-a-folder", ("synthesize", "--bank", f"{T}/folder", "--raster", S,
     "--x", INSIDE_X, "--y", INSIDE_Y, "--crs", "EPSG:32632", "-o", f"{T}/folder.wav"),
     ["folder.wav", "is a folder"]),
    ("synthesize-bank-missing", ("synthesize", "--bank", f"{T}/nobank", "--raster", S, "--x",
     INSIDE_X, "--y", INSIDE_Y, "--crs", "EPSG:32632", "-o", f"{T}/place.wav"),
     ["nobank", "--bank"]),
    ("synthesize-tile-m-under-two-pixels", (*SYNTH, "--tile-m", "5"),
     ["scene.tif", "--tile-m 5", "smaller than two pixels"]),
    ("synthesize-hour-without-metadata", (*SYNTH, "--hour", "5"), ["'--hour'", "without location"]),
    ("synthesize-two-hours", (*SYNTH, "--hour", "5", "--hour", "23"), ["'--hour'", "one --hour"]),
    ("synthesize-checkpoint-garbage", (*SYNTH, "--checkpoint", f"{T}/garbage.bin"),
     ["garbage.bin"]),
    # geosound audio, sonify, pairs, demo
    ("audio-embed-out-is-a-folder", ("audio", "embed", f"{T}/notes.txt", "-o",
     f"{T}/folder.npz"), ["folder.npz", "is a folder"]),
    ("audio-embed-missing-file", ("audio", "embed", f"{T}/missing.wav", "-o", f"{T}/e.npz"),
     ["missing.wav"]),
    ("sonify-out-is-a-folder", ("sonify", "-o", f"{T}/folder.parquet"), ["folder.parquet"]),
    ("sonify-seed-negative", ("sonify", "-o", f"{T}/m.parquet", "--seed", "-1"), ["'--seed'"]),
    ("pairs-chip-size-0", ("pairs", f"{T}/notes.txt", "-o", f"{T}/m.parquet", "--chip-size",
     "0"), ["'--chip-size'"]),
    ("pairs-out-is-a-folder", ("pairs", f"{T}/notes.txt", "-o", f"{T}/folder.parquet"),
     ["folder.parquet", "is a folder"]),
    ("pairs-out-not-parquet", ("pairs", f"{T}/notes.txt", "-o", f"{T}/m.csv"),
     ["m.csv", "give --out a .parquet name"]),
    ("demo-out-is-a-file", ("demo", "-o", f"{T}/existing.txt"), ["existing.txt"]),
]
# fmt: on


@pytest.mark.parametrize(
    ("args", "needles"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    workspace: dict[str, str], run_cli, args: tuple[str, ...], needles: list[str]
):
    root = Path(workspace["tmp"])
    before = _files(root)
    argv = [a.format(**workspace) for a in args]
    started = time.monotonic()
    result = run_cli(*argv)
    assert_one_line_refusal(result, *needles)
    assert _files(root) == before  # no output, no hidden temporary file, no lock
    assert time.monotonic() - started < 60  # refused before any model loads


def test_the_cases_cover_the_issue():
    assert len(BAD_INPUT) >= 40
    assert len({c[0] for c in BAD_INPUT}) == len(BAD_INPUT)


@pytest.mark.parametrize(
    "args",
    [
        (*MAP, "--tile", "0"),
        ("train", "-o", f"{T}/run", "--epochs", "0"),
        ("train", "-o", f"{T}/run", "--config", f"{T}/garbage.bin"),
        ("sonify", "-o", f"{T}/folder.parquet"),
        ("audio", "embed", f"{T}/missing.wav", "-o", f"{T}/e.npz"),
        ("index", "build", f"{T}/folder", "-o", f"{T}/bank", "--kind", "fast"),
        ("evaluate", "--compare", f"{T}/garbage.bin"),
        ("map", f"{T}/notes.txt", "-o", f"{T}/out", "-t", "birds"),
    ],
    ids=[
        "map-option",
        "train-option",
        "train-config",
        "sonify-out",
        "audio-embed",
        "index-build",
        "evaluate",
        "map-raster",
    ],
)
def test_progress_json_ends_with_an_error_line_on_early_refusal(
    workspace: dict[str, str], run_cli, args: tuple[str, ...]
):
    argv = [a.format(**workspace) for a in args]
    for flag in (["--progress", "json"], ["--progress=json"]):
        result = run_cli(*argv, *flag)
        line = assert_one_line_refusal(result)
        last = json.loads(result.stdout.strip().splitlines()[-1])
        assert set(last) == {"error"}
        assert line == f"geosound: error: {last['error']}"


def test_without_json_stdout_stays_empty(workspace: dict[str, str], run_cli):
    result = run_cli(*[a.format(**workspace) for a in (*MAP, "--tile", "0")])
    assert_one_line_refusal(result, "'--tile'")
    assert result.stdout == ""


def test_library_warnings_do_not_precede_the_error_line(tmp_path: Path, run_cli):
    plain = tmp_path / "plain.tif"  # no transform, no CRS: rasterio warns NotGeoreferenced
    with (
        pytest.warns(NotGeoreferencedWarning),
        rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst,
    ):
        dst.write(np.zeros((1, 8, 8), "uint8"))
    quiet = run_cli("map", str(plain), "-o", str(tmp_path / "out"), "-t", "birds")
    assert_one_line_refusal(quiet, "plain.tif", "no CRS")
    assert "Warning" not in quiet.stderr
    verbose = run_cli("--verbose", "map", str(plain), "-o", str(tmp_path / "out"), "-t", "birds")
    assert verbose.returncode == 2
    assert "NotGeoreferencedWarning" in verbose.stderr
    assert verbose.stderr.count("geosound: error: ") == 1


def test_read_only_output_folder_names_the_output(data_raster, tmp_path: Path, run_cli):
    scene = data_raster("utm_uint16.tif", "scene.tif")
    locked = tmp_path / "locked"
    locked.mkdir()
    _make_read_only(locked)
    try:
        chip = run_cli("chip", str(scene), "--x", INSIDE_X, "--y", INSIDE_Y, "--crs",
                       "EPSG:32632", "-o", str(locked / "c.tif"))  # fmt: skip
        line = assert_one_line_refusal(chip, "c.tif", "not writable")
        assert ".tmp" not in line
        mapped = run_cli("map", str(scene), "-o", str(locked), "-t", "birds")
        assert_one_line_refusal(mapped, str(locked), "not writable")
        inner = run_cli("map", str(scene), "-o", str(locked / "sub"), "-t", "birds")
        assert_one_line_refusal(inner, "sub", "not writable")
    finally:
        _undo_read_only(locked)
    assert list(locked.iterdir()) == []


def test_atomic_write_into_read_only_folder_names_the_destination(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    _make_read_only(locked)
    try:
        with pytest.raises(PermissionError) as caught, atomic_path(locked / "out.tif") as tmp:
            tmp.write_text("never")
    finally:
        _undo_read_only(locked)
    assert caught.value.filename == str(locked / "out.tif")
    assert ".tmp" not in str(caught.value)


def _make_read_only(folder: Path) -> None:
    """Make ``folder`` unwritable, also for root (immutable flag); skip where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if done.returncode != 0 or os.access(folder, os.W_OK):
        pytest.skip("root, and no chattr +i on this filesystem: cannot make a folder read-only")


def _undo_read_only(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


# -- SIGTERM and stale temporary files ---------------------------------------------------------

SLOW_WRITER = """
import sys, time
import typer
from geosound.atomic import atomic_path
from geosound.cli import app as cli

@cli.app.command("slow-write")
def slow_write(out: str) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text("half a product")
        print("writing", flush=True)
        time.sleep(60)

cli.main(["slow-write", sys.argv[1]])
"""


def test_sigterm_mid_write_removes_the_temporary_file_and_exits_143(tmp_path: Path):
    out = tmp_path / "product.tif"
    job = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert job.stdout is not None and job.stdout.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # mid-write
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 143
    assert stderr.strip().splitlines() == ["geosound: error: terminated"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_map_exits_143_and_leaves_no_temporary_file(tmp_path: Path):
    raster = tmp_path / "big.tif"
    size = 1536
    rows, cols = np.mgrid[0:size, 0:size]
    pixels = np.stack([(b * 10000 + rows * 100 + cols) % 60000 for b in range(3)])
    with rasterio.open(raster, "w", driver="GTiff", width=size, height=size, count=3,
                       dtype="uint16", crs="EPSG:32632",
                       transform=from_origin(500000, 5200000, 10, 10)) as dst:  # fmt: skip
        dst.write(pixels.astype("uint16"))
    out = tmp_path / "out"
    job = subprocess.Popen(
        [sys.executable, "-m", "geosound", "map", str(raster), "-o", str(out), "-t", "birds",
         "--chunk-rows", "1", "--progress", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert job.stdout is not None
    first = json.loads(job.stdout.readline())
    assert "progress" in first
    job.send_signal(signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=60)
    assert job.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "geosound: error: terminated"
    assert json.loads(stdout.strip().splitlines()[-1]) == {"error": "terminated"}
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert leftovers == []
    assert not (out / "similarity.tif").exists()


def test_next_run_removes_a_dead_writers_temporary_file_only(data_raster, tmp_path: Path,
                                                              run_cli):  # fmt: skip
    scene = data_raster("utm_uint16.tif", "scene.tif")
    host = writer_tag().split("-")[0]
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".c.{host}-{dead}-0badc0de.tif.tmp"
    live = tmp_path / f".c.{host}-{alive}-0000beef.tif.tmp"  # this test process: alive
    other_host = tmp_path / f".c.{'0' * 8 if host != '0' * 8 else '1' * 8}-{dead}-00aa.tif.tmp"
    other_file = tmp_path / f".d.{host}-{dead}-0badc0de.tif.tmp"  # another destination
    unknown = tmp_path / ".c.something.tif.tmp"  # not a name geosound makes
    for path in (stale, live, other_host, other_file, unknown):
        path.write_text("left behind")
    result = run_cli("chip", str(scene), "--x", INSIDE_X, "--y", INSIDE_Y, "--crs",
                     "EPSG:32632", "-o", str(tmp_path / "c.tif"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.tif").is_file()
    assert not stale.exists()
    assert live.exists() and other_host.exists() and other_file.exists() and unknown.exists()


def test_stale_folders_of_a_dead_writer_are_removed_or_restored(tmp_path: Path):
    host, dead = writer_tag().split("-")[0], _dead_pid()
    bank = tmp_path / "bank"
    bank.mkdir()
    staging = tmp_path / f".bank.{host}-{dead}-00ff.tmp"
    staging.mkdir()
    (staging / "index.faiss").write_text("half")
    live = tmp_path / f".bank.{host}-{os.getpid()}-0abc.tmp"
    live.mkdir()
    removed = remove_stale_temporaries(bank)
    assert removed == [staging] and not staging.exists() and live.exists()

    # A swap cut short between its two renames: the folder is gone, its old version aside.
    other = tmp_path / "other"
    aside = tmp_path / f".other.{host}-{dead}-0def.old"
    aside.mkdir()
    (aside / "bank.json").write_text("{}")
    remove_stale_temporaries(other)
    assert (other / "bank.json").read_text() == "{}" and not aside.exists()


def test_a_listening_scheduler_passes_the_check_and_a_closed_one_does_not():
    from geosound.cli.checks import check_scheduler

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_scheduler(f"tcp://127.0.0.1:{server.getsockname()[1]}")
        check_scheduler(f"127.0.0.1:{server.getsockname()[1]}")  # Dask's scheme-less form
    with pytest.raises(Exception, match="cannot reach the Dask scheduler") as caught:
        check_scheduler(f"tcp://127.0.0.1:{_closed_port()}")
    assert "'--scheduler'" in caught.value.format_message()  # type: ignore[attr-defined]
