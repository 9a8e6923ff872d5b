"""``geosound index build|search`` and the shared space behind them, on real files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    sf.write(folder / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    sf.write(folder / "noise.flac", 0.1 * rng.standard_normal(16000 * 3), 16000)
    sf.write(folder / "chirp.wav", 0.3 * np.sin(2 * np.pi * (300 + 900 * t) * t), 16000)
    return folder


def build_bank(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    recordings: Path,
    bank: Path,
    checkpoint: Path,
    env: dict[str, str],
) -> subprocess.CompletedProcess[str]:
    """``geosound index build RECORDINGS -o BANK --checkpoint CHECKPOINT``, quietly."""
    return run_cli(
        "index", "build", str(recordings), "-o", str(bank), "--checkpoint", str(checkpoint),
        "--progress", "none", env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_build_then_search_by_audio_and_text(
    tmp_path: Path, recordings: Path, run_cli, random_checkpoint
):
    checkpoint = random_checkpoint(tmp_path / "a.pt", seed=0)
    bank = tmp_path / "bank"
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    built = build_bank(run_cli, recordings, bank, checkpoint, env)
    assert built.returncode == 0, built.stderr
    assert {p.name for p in bank.iterdir()} == {"index.faiss", "metadata.parquet", "bank.json"}

    found = run_cli(
        "index",
        "search",
        str(bank),
        "--audio",
        str(recordings / "noise.flac"),
        "-k",
        "3",
        "--checkpoint",
        str(checkpoint),
        "--json",
        env=env,
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert Path(hits[0]["path"]).name == "noise.flac" and hits[0]["score"] > 0.999
    assert [h["rank"] for h in hits] == [1, 2, 3]

    by_text = run_cli(
        "index",
        "search",
        str(bank),
        "--text",
        "white noise",
        "-k",
        "2",
        "--checkpoint",
        str(checkpoint),
        env=env,
    )
    assert by_text.returncode == 0, by_text.stderr
    assert ".wav" in by_text.stdout or ".flac" in by_text.stdout


@pytest.mark.slow
def test_a_sharded_bank_is_built_and_searched_as_one(
    tmp_path: Path, recordings: Path, run_cli, random_checkpoint
):
    checkpoint = random_checkpoint(tmp_path / "a.pt", seed=0)
    bank = tmp_path / "bank"
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    built = run_cli(
        "index", "build", str(recordings), "-o", str(bank), "--checkpoint", str(checkpoint),
        "--kind", "flat", "--shard-size", "2", env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "3 recordings, 2 shards (flat) index" in built.stdout
    assert {p.name for p in bank.iterdir()} == {"bank.json", "shard-00000", "shard-00001"}
    for recording in ("chirp.wav", "noise.flac", "tone.wav"):  # the shards hold 2 and 1
        found = run_cli(
            "index", "search", str(bank), "--audio", str(recordings / recording), "-k", "3",
            "--checkpoint", str(checkpoint), "--json", env=env,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)
        assert Path(hits[0]["path"]).name == recording and hits[0]["score"] > 0.999
        assert sorted(h["index"] for h in hits) == [0, 1, 2]


def test_unknown_kind_and_bad_shard_size_are_refused(tmp_path: Path, recordings: Path, run_cli):
    for option, value in (("--kind", "annoy"), ("--shard-size", "0")):
        result = run_cli(
            "index", "build", str(recordings), "-o", str(tmp_path / "b"), option, value
        )
        assert result.returncode == 2 and option in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_search_with_another_model_is_refused(
    tmp_path: Path, recordings: Path, run_cli, random_checkpoint
):
    first = random_checkpoint(tmp_path / "a.pt", seed=0)
    second = random_checkpoint(tmp_path / "b.pt", seed=1)
    bank = tmp_path / "bank"
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    built = build_bank(run_cli, recordings, bank, first, env)
    assert built.returncode == 0, built.stderr
    result = run_cli(
        "index", "search", str(bank), "--text", "rain", "--checkpoint", str(second), env=env
    )
    assert result.returncode == 2
    assert "bank" in result.stderr and "sat2sound-" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_folder_is_refused_and_nothing_is_written(tmp_path: Path, run_cli):
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = run_cli("index", "build", str(empty), "-o", str(tmp_path / "bank"))
    assert result.returncode == 2
    assert "no audio files" in result.stderr and "nothing" in result.stderr
    assert not (tmp_path / "bank").exists()


def test_corrupt_recording_is_refused_before_anything_is_written(
    tmp_path: Path, recordings, run_cli
):
    (recordings / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    result = run_cli("index", "build", str(recordings), "-o", str(tmp_path / "bank"))
    assert result.returncode == 2 and "broken.wav" in result.stderr
    assert not (tmp_path / "bank").exists()


def test_corrupt_checkpoint_is_refused(tmp_path: Path, recordings: Path, run_cli):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = run_cli(
        "index", "build", str(recordings), "-o", str(tmp_path / "bank"), "--checkpoint", str(bad)
    )
    assert result.returncode == 2 and "bad.pt" in result.stderr
    assert not (tmp_path / "bank").exists()


def test_a_folder_with_an_esc50_index_is_read_with_labels_and_licences(recordings: Path):
    from geosound.cli.index import recordings_table

    (recordings / "index.csv").write_text(
        "filename,class,fold,license\ntone.wav,sine tone,1,CC0-1.0\nnoise.flac,rain,2,CC-BY-4.0\n"
    )
    table = recordings_table(recordings).set_index("path")
    assert len(table) == 3  # chirp.wav is not listed: indexed too, without a label
    tone, noise, chirp = (str((recordings / n).resolve()) for n in ("tone.wav", "noise.flac",
                                                                    "chirp.wav"))  # fmt: skip
    assert table.loc[tone, "label"] == "sine tone" and table.loc[tone, "licence"] == "CC0-1.0"
    assert table.loc[noise, "label"] == "rain" and table.loc[noise, "fold"] == 2
    assert pd.isna(table.loc[chirp, "label"])


def test_a_table_listing_a_missing_recording_names_it(recordings: Path):
    from geosound.cli.index import recordings_table
    from geosound.errors import InputError

    (recordings / "metadata.csv").write_text("path,label\ngone.wav,x\n")
    with pytest.raises(InputError, match=r"gone\.wav") as caught:
        recordings_table(recordings)
    assert "metadata.csv" in str(caught.value)


@pytest.mark.devdata
def test_the_dev_esc50_folder_indexes_with_its_classes(dev_data: Path):
    from geosound.cli.index import recordings_table

    folder = dev_data / "esc50_outdoor_16k"
    table = recordings_table(folder)
    index = pd.read_csv(folder / "index.csv")
    assert len(table) == len(index)
    assert table["label"].notna().all() and set(table["label"]) == set(index["class"])
    assert table["licence"].str.contains("CC").all()


@pytest.mark.slow
def test_build_reports_the_encoding_of_the_recordings(
    tmp_path: Path, recordings: Path, run_cli, random_checkpoint
):
    checkpoint = random_checkpoint(tmp_path / "a.pt", seed=0)
    env = {"GEOSOUND_CACHE": str(tmp_path / "cache")}
    built = run_cli(
        "index", "build", str(recordings), "-o", str(tmp_path / "bank"),
        "--checkpoint", str(checkpoint), "--progress", "json", env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    lines = [json.loads(line) for line in built.stdout.splitlines()]
    encoding = [line for line in lines if "encoded 3/3" in line.get("message", "")]
    assert encoding and 0.0 < encoding[-1]["progress"] <= 0.9
    assert lines[-1]["ok"] is True
