"""AudioBank and ShardedBank: exact and approximate search, metadata, recall, atomic saves,
sharded search (in process and on a real Dask cluster), and clear errors.

Synthetic vectors are small (D ≤ 64) so the file runs in seconds; one dev-data test embeds
real ESC-50 clips with aiSFX and checks that a clip finds itself.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

from geosound import atomic
from geosound.errors import InputError
from geosound.retrieval import (
    AUTO_FLAT_LIMIT,
    IVFPQ_MIN_VECTORS,
    AudioBank,
    BankError,
    BankHits,
    ShardedBank,
    choose_kind,
    open_bank,
)
from geosound.retrieval import shards as bank_shards

SPACE = "aisfx@1"


def unit(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def paths(count: int) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"clips/{i:05d}.flac" for i in range(count)]})


def clustered(
    count: int, dim: int, seed: int, centres: int = 40, spread: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors around random centres, and 100 queries drawn around the same centres.

    The noise has a decaying spectrum in a random basis (variance ∝ 1/i²), as real embeddings
    have a few dominant directions; isotropic noise is an unrealistically hard case for
    product quantisation.
    """
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim))
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scale = 1.0 / np.arange(1, dim + 1)
    scale *= np.sqrt(dim / (scale**2).sum())

    def draw(n: int) -> np.ndarray:
        noise = (rng.standard_normal((n, dim)) * scale) @ basis.T
        return unit(middle[rng.integers(centres, size=n)] + spread * noise)

    return draw(count), draw(100)


@pytest.fixture(scope="module")
def random_bank() -> tuple[AudioBank, np.ndarray]:
    vectors = np.random.default_rng(0).standard_normal((500, 32)).astype(np.float32) * 3.0
    metadata = paths(500).assign(
        label=[f"class{i % 7}" for i in range(500)],
        licence="CC BY 4.0",
        lon=np.linspace(-10, 10, 500),
        lat=np.linspace(40, 50, 500),
        take=np.arange(500) % 3,
    )
    return AudioBank.build(vectors, metadata, SPACE), vectors


@pytest.fixture(scope="module")
def clustered_set() -> tuple[np.ndarray, np.ndarray]:
    return clustered(IVFPQ_MIN_VECTORS + 2000, 32, seed=1)


# --------------------------------------------------------------------------- search


def test_exact_search_equals_numpy_brute_force(random_bank):
    bank, vectors = random_bank
    queries = np.random.default_rng(1).standard_normal((20, 32)).astype(np.float32)
    hits = bank.search(queries, k=5)

    sims = unit(queries) @ unit(vectors).T
    expected = np.argsort(-sims, axis=1)[:, :5]
    assert bank.kind == "flat" and len(bank) == 500 and bank.dim == 32
    assert isinstance(hits, BankHits) and len(hits) == 20
    assert hits.scores.shape == hits.indices.shape == (20, 5)
    np.testing.assert_array_equal(hits.indices, expected)
    np.testing.assert_allclose(hits.scores, np.take_along_axis(sims, expected, 1), atol=1e-5)


def test_build_normalises_a_copy_and_search_accepts_one_vector(random_bank):
    bank, vectors = random_bank
    before = vectors.copy()
    AudioBank.build(vectors, paths(500), SPACE)
    np.testing.assert_array_equal(vectors, before)  # never normalised in place
    hits = bank.search(vectors[7] * 10, k=1)  # scale does not matter: cosine
    assert hits.indices.tolist() == [[7]]
    assert hits.scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_hits_frame_carries_metadata(random_bank):
    bank, vectors = random_bank
    frame = bank.search(vectors[[3, 10]], k=4).to_frame()
    assert list(frame.columns[:4]) == ["query", "rank", "index", "score"]
    assert {"path", "label", "licence", "lon", "lat", "take"} <= set(frame.columns)
    assert len(frame) == 8
    assert frame["query"].tolist() == [0] * 4 + [1] * 4
    assert frame["rank"].tolist() == [1, 2, 3, 4] * 2
    top = frame[frame["rank"] == 1]
    assert top["index"].tolist() == [3, 10]
    for _, row in frame.iterrows():
        meta = bank.metadata.iloc[row["index"]]
        assert (row["path"], row["label"], row["lon"]) == (meta["path"], meta["label"], meta["lon"])


def test_hits_frame_keeps_clashing_metadata_columns():
    vectors = np.eye(4, dtype=np.float32)
    metadata = paths(4).assign(score=[0.1, 0.2, 0.3, 0.4])
    frame = AudioBank.build(vectors, metadata, SPACE).search(vectors[:1], k=2).to_frame()
    assert frame["score"].iloc[0] == pytest.approx(1.0)
    assert frame["score_meta"].iloc[0] == pytest.approx(0.1)


def test_k_larger_than_bank_returns_every_clip():
    bank = AudioBank.build(np.eye(3, dtype=np.float32), paths(3), SPACE)
    hits = bank.search(np.ones(3), k=10)
    assert hits.indices.shape == (1, 3)
    assert sorted(hits.indices[0].tolist()) == [0, 1, 2]


def test_add_appends_vectors_and_metadata():
    bank = AudioBank.build(np.eye(4, dtype=np.float32)[:2], paths(2), SPACE)
    bank.add(np.eye(4, dtype=np.float32)[2:], pd.DataFrame({"path": ["c.flac", "d.flac"]}))
    assert len(bank) == 4 and len(bank.metadata) == 4
    hits = bank.search(np.eye(4, dtype=np.float32)[3], k=1)
    assert hits.to_frame()["path"].tolist() == ["d.flac"]


def test_auto_is_exact_below_the_limit_and_ivf_from_it():
    bank = AudioBank.build(np.eye(8, dtype=np.float32), paths(8), SPACE, kind="auto")
    assert bank.kind == "flat" and bank.recall is None
    assert choose_kind("auto", AUTO_FLAT_LIMIT - 1) == "flat"
    assert choose_kind("auto", AUTO_FLAT_LIMIT) == "ivf"
    assert choose_kind("auto", 10**9) == "ivf"  # bigger collections are sharded, not PQ-only
    assert [choose_kind(k, 10) for k in ("flat", "ivf", "hnsw", "ivfpq")] == [
        "flat", "ivf", "hnsw", "ivfpq"
    ]  # fmt: skip


# --------------------------------------------------------------------------- approximate


def test_hnsw_recall_is_high_and_stored(clustered_set, tmp_path):
    vectors, queries = clustered_set
    bank = AudioBank.build(vectors, paths(len(vectors)), SPACE, kind="hnsw", recall_queries=queries)
    assert bank.kind == "hnsw"
    assert bank.recall is not None
    assert bank.recall["k"] == 10 and bank.recall["query_source"] == "given"
    assert bank.recall["value"] >= 0.9
    assert bank.recall_at_k(queries, k=10) == pytest.approx(bank.recall["value"])

    bank.save(tmp_path / "bank")
    info = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert info["recall"]["value"] == pytest.approx(bank.recall["value"])
    loaded = AudioBank.load(tmp_path / "bank")
    assert loaded.index.hnsw.efSearch == bank.params["ef_search"]
    np.testing.assert_array_equal(
        loaded.search(queries, 10).indices, bank.search(queries, 10).indices
    )


def test_ivfpq_trains_measures_recall_and_compresses(clustered_set):
    vectors, queries = clustered_set
    bank = AudioBank.build(
        vectors, paths(len(vectors)), SPACE, kind="ivfpq", recall_queries=queries
    )
    params = bank.params
    assert bank.kind == "ivfpq" and bank.index.is_trained and len(bank) == len(vectors)
    assert 32 % params["m"] == 0 and params["nlist"] * 39 <= len(vectors)
    assert bank.index.nprobe == params["nprobe"]
    # PQ codes are lossy (D/4 bytes a vector) and neighbours inside a cluster differ by less
    # than the quantisation error, so recall@10 is ~0.48 here, far below HNSW's; the bar
    # catches a broken index (random rows would score ~0.001), not a mediocre one.
    assert bank.recall is not None and bank.recall["value"] >= 0.4
    # Its codes are lossy, so recall needs the original vectors.
    with pytest.raises(BankError, match="vectors="):
        bank.recall_at_k(queries)
    assert bank.recall_at_k(queries, vectors=vectors) == pytest.approx(bank.recall["value"])


def test_ivf_reranks_exactly_with_high_recall_and_maps_its_vectors(clustered_set, tmp_path):
    vectors, queries = clustered_set
    flat = AudioBank.build(vectors, paths(len(vectors)), SPACE, kind="flat")
    bank = AudioBank.build(vectors, paths(len(vectors)), SPACE, kind="ivf", recall_queries=queries)
    assert bank.kind == "ivf" and set(bank.params) >= {"nlist", "m", "nprobe", "k_factor"}
    # On this set the PQ alone (ivfpq) finds about half the true top 10; the exact
    # re-ranking of 10·k candidates must find nearly all of them.
    exact = flat.search(queries, 10)
    hits = bank.search(queries, 10)
    found = np.mean(
        [np.isin(e, h).mean() for e, h in zip(exact.indices, hits.indices, strict=True)]
    )
    assert found >= 0.95
    assert bank.recall is not None and bank.recall["value"] == pytest.approx(found)
    # Re-ranked scores are exact cosines (PQ scores are off by ~1e-2 here).
    cosines = np.einsum("qd,qkd->qk", unit(queries), unit(vectors)[hits.indices])
    np.testing.assert_allclose(hits.scores, cosines, atol=1e-5)
    assert bank.recall_at_k(queries) == pytest.approx(found)  # vectors read back

    folder = bank.save(tmp_path / "ivf")
    assert json.loads((folder / "bank.json").read_text())["format"] == 2
    loaded = AudioBank.load(folder, expected_space_id=SPACE)
    assert loaded.kind == "ivf" and loaded._memory_mapped
    assert loaded.index.k_factor == bank.params["k_factor"]
    assert faiss.downcast_index(loaded.index.base_index).nprobe == bank.params["nprobe"]
    np.testing.assert_array_equal(loaded.search(queries, 10).indices, hits.indices)
    # A mapped index cannot grow (faiss would abort): add() reads it into memory first.
    loaded.add(vectors[:5] * -1, paths(5))
    assert len(loaded) == len(vectors) + 5 and not loaded._memory_mapped
    assert loaded.search(-vectors[2], 1).indices.tolist() == [[len(vectors) + 2]]


def test_other_kinds_are_still_written_as_format_1(random_bank, tmp_path):
    bank, _ = random_bank
    info = json.loads((bank.save(tmp_path / "flat") / "bank.json").read_text())
    assert info["format"] == 1 and info["kind"] == "flat"


def test_default_recall_queries_sample_the_bank(clustered_set):
    vectors, _ = clustered_set
    bank = AudioBank.build(vectors[:3000], paths(3000), SPACE, kind="hnsw")
    assert bank.recall is not None
    assert bank.recall["query_source"] == "bank sample" and bank.recall["queries"] == 1000


@pytest.mark.parametrize("kind", ["ivfpq", "ivf"])
def test_ivf_kinds_refuse_too_few_vectors(kind):
    vectors = unit(np.random.default_rng(2).standard_normal((500, 16)))
    with pytest.raises(BankError, match=rf"at least {IVFPQ_MIN_VECTORS} vectors.*got 500"):
        AudioBank.build(vectors, paths(500), SPACE, kind=kind)


# --------------------------------------------------------------------------- shards


@pytest.fixture(scope="module")
def sharded_set(tmp_path_factory) -> tuple[Path, AudioBank, np.ndarray]:
    """Three uneven flat shards of 2,000 vectors, the same vectors in one bank, queries."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((2000, 24)).astype(np.float32)
    metadata = paths(2000).assign(label=[f"c{i % 5}" for i in range(2000)])
    bounds = [0, 700, 1500, 2000]
    parts = [(vectors[a:b], metadata.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    folder = tmp_path_factory.mktemp("sharded") / "bank"
    ShardedBank.build(folder, iter(parts), SPACE, kind="flat")
    whole = AudioBank.build(vectors, metadata, SPACE, kind="flat")
    return folder, whole, rng.standard_normal((30, 24)).astype(np.float32)


def test_sharded_search_equals_one_bank(sharded_set):
    folder, whole, queries = sharded_set
    sharded = open_bank(folder, expected_space_id=SPACE)
    assert isinstance(sharded, ShardedBank)
    assert len(sharded) == 2000 and sharded.counts == [700, 800, 500] and sharded.dim == 24
    assert sorted(p.name for p in folder.iterdir()) == [
        "bank.json", "shard-00000", "shard-00001", "shard-00002"
    ]  # fmt: skip
    for k in (1, 10, 50):
        hits, expected = sharded.search(queries, k), whole.search(queries, k)
        np.testing.assert_array_equal(hits.indices, expected.indices)
        np.testing.assert_allclose(hits.scores, expected.scores, atol=1e-6)
    # Every clip: the same ranking up to swaps of scores equal to float rounding (a shard's
    # dot products are summed in other blocks than the whole bank's).
    hits, expected = sharded.search(queries, 5000), whole.search(queries, 5000)
    assert hits.indices.shape == (30, 2000)
    np.testing.assert_allclose(hits.scores, expected.scores, atol=1e-6)
    assert (np.sort(hits.indices, axis=1) == np.arange(2000)).all()
    assert (hits.indices == expected.indices).mean() > 0.999
    frame = sharded.search(queries, 5).to_frame()
    pd.testing.assert_frame_equal(frame, whole.search(queries, 5).to_frame())

    one_at_a_time = ShardedBank.load(folder, keep_open=False)
    np.testing.assert_array_equal(
        one_at_a_time.search(queries, 7).indices, whole.search(queries, 7).indices
    )
    assert one_at_a_time._open == {}


@pytest.mark.slow
def test_sharded_search_on_a_dask_cluster_equals_one_bank(sharded_set):
    from distributed import Client, LocalCluster

    folder, whole, queries = sharded_set
    sharded = ShardedBank.load(folder)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        for _ in range(2):  # the second search finds the shards open on the workers
            hits = sharded.search(queries, 10, client=client)
            np.testing.assert_array_equal(hits.indices, whole.search(queries, 10).indices)
            np.testing.assert_allclose(hits.scores, whole.search(queries, 10).scores, atol=1e-6)
        ran = client.run(_open_shard_count)
        # Every shard was opened, and no worker opened one twice (a later search may send a
        # shard to the other worker, which then opens it too).
        assert sum(ran.values()) >= 3 and all(count <= 3 for count in ran.values())


def _open_shard_count() -> int:
    return len(bank_shards._WORKER_SHARDS)


def test_merge_top_k_skips_missing_hits():
    scores, rows = bank_shards.merge_top_k(
        [
            (np.array([[0.9, 0.1]], np.float32), np.array([[1, -1]])),
            (np.array([[0.5, 0.4]], np.float32), np.array([[0, 1]])),
        ],
        offsets=[0, 10],
        k=3,
    )
    assert rows.tolist() == [[1, 10, 11]]
    np.testing.assert_allclose(scores, [[0.9, 0.5, 0.4]])


def test_shards_of_another_space_or_dimension_are_refused(tmp_path):
    rng = np.random.default_rng(6)
    first = (rng.standard_normal((20, 8)), paths(20))
    with pytest.raises(BankError, match="shard 1 has dimension 6, shard 0 has 8"):
        ShardedBank.build(tmp_path / "b", [first, (rng.standard_normal((5, 6)), paths(5))], SPACE)
    clap = AudioBank.build(rng.standard_normal((5, 8)), paths(5), "clap-audio@1")
    with pytest.raises(BankError, match=r"shard 1 holds vectors of embedding space 'clap-audio@1'"):
        ShardedBank.build(tmp_path / "b", [first, clap], SPACE)
    assert list(tmp_path.iterdir()) == []  # nothing partial left
    with pytest.raises(BankError, match="no shards"):
        ShardedBank.build(tmp_path / "b", [], SPACE)

    folder = ShardedBank.build(tmp_path / "b", [first, first], SPACE).folder
    shard_info = folder / "shard-00001" / "bank.json"
    info = json.loads(shard_info.read_text())
    shard_info.write_text(json.dumps({**info, "space_id": "clap-audio@1", "dim": 6}))
    with pytest.raises(BankError) as caught:
        ShardedBank.load(folder)
    message = str(caught.value)
    assert str(folder / "shard-00001") in message
    assert "embedding space 'clap-audio@1', the bank 'aisfx@1'" in message
    assert "dimension 6, the bank 8" in message
    with pytest.raises(BankError, match="is a sharded bank"):
        AudioBank.load(folder)
    with pytest.raises(BankError, match="not a sharded one"):
        ShardedBank.load(folder / "shard-00000")
    with pytest.raises(BankError, match="queries will come from 'other@1'"):
        open_bank(folder, expected_space_id="other@1")
    (folder / "shard-00000" / "bank.json").unlink()
    with pytest.raises(BankError, match=r"bank\.json is missing"):
        ShardedBank.load(folder)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.empty((0, 8), dtype=np.float32), "no vectors to index"),
        (np.zeros(8, dtype=np.float32), "2-D"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
        (np.array([[1.0, np.nan]]), "row 0 has NaN"),
    ],
)
def test_build_refuses_unusable_vectors(vectors, message):
    with pytest.raises(BankError, match=message) as caught:
        AudioBank.build(vectors, paths(max(1, len(np.atleast_2d(vectors)))), SPACE)
    assert isinstance(caught.value, InputError)


def test_build_refuses_bad_metadata_kind_and_space():
    vectors = np.eye(3, dtype=np.float32)
    with pytest.raises(BankError, match="lacks a 'path' column"):
        AudioBank.build(vectors, pd.DataFrame({"label": ["a", "b", "c"]}), SPACE)
    with pytest.raises(BankError, match="2 rows for 3 vectors"):
        AudioBank.build(vectors, paths(2), SPACE)
    with pytest.raises(BankError, match="unknown index kind 'annoy'"):
        AudioBank.build(vectors, paths(3), SPACE, kind="annoy")  # type: ignore[arg-type]
    with pytest.raises(BankError, match="space_id"):
        AudioBank.build(vectors, paths(3), "")


def test_search_refuses_wrong_dimension(random_bank):
    bank, _ = random_bank
    with pytest.raises(BankError, match="dimension 16, the bank has 32"):
        bank.search(np.ones((2, 16)), k=3)
    with pytest.raises(BankError, match="k must be at least 1"):
        bank.search(np.ones(32), k=0)


# --------------------------------------------------------------------------- disk


def test_save_load_round_trip(random_bank, tmp_path):
    bank, vectors = random_bank
    folder = bank.save(tmp_path / "banks" / "esc50")
    assert sorted(p.name for p in folder.iterdir()) == [
        "bank.json",
        "index.faiss",
        "metadata.parquet",
    ]
    info = json.loads((folder / "bank.json").read_text())
    assert info["space_id"] == SPACE and info["kind"] == "flat"
    assert info["dim"] == 32 and info["count"] == 500 and info["recall"] is None
    assert {"geosound_version", "created", "params"} <= set(info)

    loaded = AudioBank.load(folder, expected_space_id=SPACE)
    assert (loaded.space_id, loaded.kind, len(loaded), loaded.dim) == (SPACE, "flat", 500, 32)
    pd.testing.assert_frame_equal(loaded.metadata, bank.metadata, check_dtype=False)
    queries = vectors[:5]
    np.testing.assert_array_equal(
        loaded.search(queries, 3).indices, bank.search(queries, 3).indices
    )
    assert [p.name for p in (tmp_path / "banks").iterdir()] == ["esc50"]  # no temp left
    (tmp_path / "plain").mkdir()  # the bank gets the user's usual permissions, not 0700
    assert folder.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_load_with_another_space_id_names_both(random_bank, tmp_path):
    bank, _ = random_bank
    bank.save(tmp_path / "bank")
    with pytest.raises(BankError) as caught:
        AudioBank.load(tmp_path / "bank", expected_space_id="sat2sound:run7/audio")
    text = str(caught.value)
    assert "'aisfx@1'" in text and "'sat2sound:run7/audio'" in text
    assert str(tmp_path / "bank") in text
    assert caught.value.exit_code == 2


def test_load_missing_folder_and_non_bank(tmp_path):
    with pytest.raises(BankError, match="audio bank not found"):
        AudioBank.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BankError, match=r"not an audio bank: bank\.json is missing"):
        AudioBank.load(tmp_path / "empty")


def test_load_refuses_a_truncated_index(random_bank, tmp_path):
    bank, _ = random_bank
    folder = bank.save(tmp_path / "bank")
    index_file = folder / "index.faiss"
    index_file.write_bytes(index_file.read_bytes()[:1000])
    with pytest.raises(BankError, match="corrupt or truncated") as caught:
        AudioBank.load(folder)
    assert str(index_file) in str(caught.value)


def test_load_refuses_missing_files_and_garbage_json(random_bank, tmp_path):
    bank, _ = random_bank
    folder = bank.save(tmp_path / "bank")
    (folder / "metadata.parquet").unlink()
    with pytest.raises(BankError, match="metadata file is missing"):
        AudioBank.load(folder)
    (folder / "index.faiss").unlink()
    with pytest.raises(BankError, match="index file is missing"):
        AudioBank.load(folder)
    info = json.loads((folder / "bank.json").read_text())
    (folder / "bank.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(BankError, match="newer geosound"):
        AudioBank.load(folder)
    (folder / "bank.json").write_text("{not json")
    with pytest.raises(BankError, match="corrupt"):
        AudioBank.load(folder)


def test_load_refuses_metadata_of_the_wrong_length(random_bank, tmp_path):
    bank, _ = random_bank
    folder = bank.save(tmp_path / "bank")
    bank.metadata.iloc[:-1].to_parquet(folder / "metadata.parquet", index=False)
    with pytest.raises(BankError, match=r"metadata\.parquet has 499 rows for 500 vectors"):
        AudioBank.load(folder)


def test_load_refuses_an_empty_bank(tmp_path):
    folder = AudioBank.build(np.eye(2, dtype=np.float32), paths(2), SPACE).save(tmp_path / "b")
    info = json.loads((folder / "bank.json").read_text())
    (folder / "bank.json").write_text(json.dumps({**info, "count": 0}))
    with pytest.raises(BankError, match="empty"):
        AudioBank.load(folder)


def test_saving_over_a_bank_replaces_it(tmp_path, monkeypatch):
    folder = tmp_path / "bank"
    AudioBank.build(np.eye(2, dtype=np.float32), paths(2), SPACE).save(folder)
    AudioBank.build(np.eye(3, dtype=np.float32), paths(3), "clap-audio@1").save(folder)
    assert len(AudioBank.load(folder, expected_space_id="clap-audio@1")) == 3
    # Where the atomic exchange is unavailable, two renames do the same.
    monkeypatch.setattr(atomic, "exchange_paths", lambda first, second: False)
    AudioBank.build(np.eye(4, dtype=np.float32), paths(4), SPACE).save(folder)
    assert len(AudioBank.load(folder, expected_space_id=SPACE)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_a_failed_save_leaves_the_previous_bank_intact(random_bank, tmp_path, monkeypatch):
    bank, _ = random_bank
    folder = bank.save(tmp_path / "bank")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    # Metadata Parquet cannot hold (arbitrary Python objects): fails after the index is written.
    unstorable = AudioBank.build(np.eye(3, dtype=np.float32), paths(3).assign(obj=object()), SPACE)
    with pytest.raises(BankError, match="cannot be stored as Parquet"):
        unstorable.save(folder)

    # A crash while renaming the new bank into place.
    def fail(*args, **kwargs):
        raise OSError("disk pulled out")

    monkeypatch.setattr(atomic, "exchange_paths", fail)
    with pytest.raises(OSError, match="disk pulled out"):
        AudioBank.build(np.eye(3, dtype=np.float32), paths(3), SPACE).save(folder)

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]  # no temporary folder left
    assert len(AudioBank.load(folder)) == 500


def test_save_never_replaces_something_that_is_not_a_bank(random_bank, tmp_path):
    bank, _ = random_bank
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(BankError, match="not an audio bank"):
        bank.save(precious)
    assert (precious / "chapter1.tex").read_text() == "..."
    (tmp_path / "file").write_text("x")
    with pytest.raises(BankError, match="not a folder"):
        bank.save(tmp_path / "file")


def test_loaded_index_is_inner_product(random_bank, tmp_path):
    bank, _ = random_bank
    folder = bank.save(tmp_path / "bank")
    faiss.write_index(faiss.IndexFlatL2(32), str(folder / "index.faiss"))
    with pytest.raises(BankError, match="inconsistent bank files"):
        AudioBank.load(folder)


# --------------------------------------------------------------------------- real clips


@pytest.mark.slow
@pytest.mark.devdata
def test_real_clips_retrieve_themselves_at_rank_one(dev_data: Path, tmp_path):
    from geosound.data import load_esc50
    from geosound.encoders import get_encoder

    clips = load_esc50(dev_data / "esc50_outdoor_16k")
    clips = clips.groupby("label").head(1).head(10).reset_index(drop=True)
    encoder = get_encoder("aisfx")
    vectors = encoder.encode(list(clips["path"])).pooled
    bank = AudioBank.build(vectors, clips, encoder.id)
    bank = AudioBank.load(bank.save(tmp_path / "esc50"), expected_space_id=encoder.id)

    top = bank.search(vectors, k=3).to_frame().query("rank == 1")
    assert top["index"].tolist() == list(range(len(clips)))
    assert top["path"].tolist() == clips["path"].tolist()
    assert top["licence"].tolist() == clips["licence"].tolist()
    assert (top["score"] > 0.999).all()
