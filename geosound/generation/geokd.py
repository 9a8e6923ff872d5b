"""GeoKD: the geo-contextual knowledge base of SounDiT's retrieval-augmented sampling.

One entry per training pair (METHODS.md §2): the sound's embedding in the shared space, the
scene word of its place, the layout latent of its image (the autoencoder's posterior mean,
scaled) and the place's lon/lat (NaN where unknown, as for the EuroSAT RGB JPGs). At sampling
time a query sound retrieves entries by cosine similarity (faiss, exact inner product on unit
vectors) and, when the user gives a location, by closeness:

    ``score = (1 − w) · cos(sound, entry) + w · exp(−d_km / scale_km)``

with ``d`` the haversine distance on a sphere of radius 6371.0088 km (the mean Earth radius;
the ≤ 0.5 % error of a sphere is nothing next to ``scale_km``). Entries without a location
get proximity 0: nothing says they are near. Proximity re-ranks the ``candidates`` most
similar sounds, so a place nearby that sounds nothing like the query never wins on distance
alone.

:func:`consensus` lets the retrieved entries vote: the scene most of them share is the
retrieved scene, and the best-ranked entry of that scene gives the layout. Sounds of
different land covers overlap (a river and a pasture both have birds), so the single nearest
entry is often of another land cover than the neighbourhood: on the dev pairs the nearest
train sound has the held-out sound's land cover 0.45 of the time, a vote of the 50 nearest
0.59 (five RGB land covers, chance 0.20; ``docs/sound_carries_class.py``, docs/soundit.md).

The arrays are saved as one ``.npz`` (no pickle) and the faiss index is rebuilt on load —
for thousands of entries that takes milliseconds, and the file stays readable by numpy alone.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosound.atomic import atomic_path
from geosound.errors import DataError, InputError

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), for haversine distances."""

FORMAT = "geosound-geokd-1"


def haversine_km(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Great-circle distances (km) from one point to many, on the mean-radius sphere."""
    lon1, lat1 = np.radians(lon), np.radians(lat)
    lon2, lat2 = np.radians(np.asarray(lons, float)), np.radians(np.asarray(lats, float))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def scene_key(word: str) -> str:
    """How scene words are stored and compared: ``" Forest"`` and ``"forest"`` are one scene."""
    return word.strip().lower()


@dataclass(frozen=True)
class Neighbour:
    """One retrieved entry.

    Attributes:
        index: Row in the knowledge base.
        id: The pair's id.
        scene: Its scene word.
        sound_similarity: Cosine between the query sound and the entry's sound.
        distance_km: Haversine distance to the query location (None without one, or when
            the entry has no location).
        score: What the ranking used.
    """

    index: int
    id: str
    scene: str
    sound_similarity: float
    distance_km: float | None
    score: float

    def as_dict(self) -> dict[str, object]:
        """Plain builtins, for sidecar JSON."""
        return {
            "id": self.id,
            "scene": self.scene,
            "sound_similarity": round(self.sound_similarity, 4),
            "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Consensus:
    """What retrieved entries agree on: a scene, and the entry whose layout stands for it.

    Attributes:
        scene: The scene most voters share (a tie goes to the scene of the better-ranked entry).
        layout: The best-ranked voter of that scene; its latent starts RAG.
        votes: How many voters each scene has, most first.
    """

    scene: str
    layout: Neighbour
    votes: dict[str, int]


def consensus(neighbours: Sequence[Neighbour]) -> Consensus:
    """Let retrieved entries (best first) vote on the scene; one entry is its own consensus.

    Raises:
        ValueError: No entries.
    """
    if not neighbours:
        raise ValueError("a consensus needs at least one retrieved entry")
    counts = Counter(n.scene for n in neighbours)
    first_rank: dict[str, int] = {}
    for rank, neighbour in enumerate(neighbours):
        first_rank.setdefault(neighbour.scene, rank)
    ranked = sorted(counts, key=lambda scene: (-counts[scene], first_rank[scene]))
    scene = ranked[0]
    return Consensus(scene, neighbours[first_rank[scene]], {s: counts[s] for s in ranked})


class KnowledgeBase:
    """Sound embeddings, scenes, layout latents and places, searchable by sound and place.

    Args:
        ids: ``(N,)`` pair ids.
        embeddings: ``(N, D)`` sound embeddings (normalised here).
        scenes: ``(N,)`` scene words.
        latents: ``(N, C, L, L)`` scaled layout latents.
        lon: ``(N,)`` longitudes (NaN where unknown).
        lat: ``(N,)`` latitudes (NaN where unknown).
        space_id: The space the embeddings live in; queries from another are refused.
    """

    def __init__(
        self,
        ids: Sequence[str] | np.ndarray,
        embeddings: np.ndarray,
        scenes: Sequence[str] | np.ndarray,
        latents: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        space_id: str,
    ) -> None:
        import faiss

        n = len(ids)
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or n == 0:
            raise ValueError("a knowledge base needs at least one (N, D) embedding")
        for name, values in (("scenes", scenes), ("latents", latents), ("lon", lon), ("lat", lat)):
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} rows, ids {n}")
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        self.ids = np.asarray(ids, dtype=str)
        self.embeddings = embeddings / np.maximum(norms, 1e-12)
        self.scenes = np.asarray(scenes, dtype=str)
        self.latents = np.asarray(latents, np.float32)
        self.lon = np.asarray(lon, np.float64)
        self.lat = np.asarray(lat, np.float64)
        self.space_id = space_id
        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(self.embeddings)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Width of the sound embeddings."""
        return int(self.embeddings.shape[1])

    def retrieve(
        self,
        embedding: np.ndarray,
        lon: float | None = None,
        lat: float | None = None,
        k: int = 1,
        geo_weight: float = 0.3,
        scale_km: float = 250.0,
        candidates: int = 256,
        space_id: str | None = None,
        scene: str | None = None,
    ) -> list[Neighbour]:
        """The ``k`` best entries for a sound, and a place when ``lon``/``lat`` are given.

        Args:
            embedding: ``(D,)`` the query sound in this knowledge base's space.
            lon: Query longitude, or None for sound similarity alone.
            lat: Query latitude (with ``lon``).
            k: How many neighbours.
            geo_weight: ``w`` of the score (0 ignores the location).
            scale_km: Distance at which proximity has fallen to 1/e.
            candidates: How many most similar sounds proximity re-ranks.
            space_id: The query's space, checked when given.
            scene: Only entries of this scene word, in any case (none when it has no
                entries): the layout for a scene the caller chose rather than the one the
                sound suggests.

        Raises:
            InputError: A query from another space, of the wrong width, or a half location.
        """
        if space_id is not None and space_id != self.space_id:
            raise InputError(
                f"the sound is in space {space_id} but the knowledge base in {self.space_id}"
            )
        query = np.asarray(embedding, np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise InputError(
                f"query sound has width {query.shape[1]}, the knowledge base {self.dim}"
            )
        if (lon is None) != (lat is None):
            raise InputError("give both lon and lat, or neither")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        import faiss

        allowed = None if scene is None else np.flatnonzero(self.scenes == scene_key(scene))
        available = len(self) if allowed is None else len(allowed)
        if available == 0:
            return []
        pool = min(available, max(k, 1, candidates if lon is not None else k))
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))  # alive through search
            params = faiss.SearchParameters()
            params.sel = selector
        similarity, rows = self.index.search(query, pool, params=params)
        similarity, rows = similarity[0].astype(np.float64), rows[0]
        distance: np.ndarray | None = None
        score = similarity.copy()
        if lon is not None and lat is not None:
            distance = haversine_km(lon, lat, self.lon[rows], self.lat[rows])
            proximity = np.where(
                np.isnan(distance), 0.0, np.exp(-np.nan_to_num(distance) / scale_km)
            )
            score = (1.0 - geo_weight) * similarity + geo_weight * proximity
        order = np.lexsort((rows, -score))[:k]  # ties: the earlier entry, whatever faiss did
        return [
            Neighbour(
                index=int(rows[i]),
                id=str(self.ids[rows[i]]),
                scene=str(self.scenes[rows[i]]),
                sound_similarity=float(similarity[i]),
                distance_km=None
                if distance is None or np.isnan(distance[i])
                else float(distance[i]),
                score=float(score[i]),
            )
            for i in order
        ]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the arrays to one ``.npz`` atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                format=np.array(FORMAT),
                meta=np.array(json.dumps({"space_id": self.space_id})),
                ids=self.ids,
                embeddings=self.embeddings,
                scenes=self.scenes,
                latents=self.latents.astype(np.float16),
                lon=self.lon,
                lat=self.lat,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KnowledgeBase:
        """Read a knowledge base written by :meth:`save`.

        Raises:
            DataError: Missing or foreign file.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError("knowledge base not found", path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise DataError(f"not a {FORMAT} knowledge base", path)
                meta = json.loads(str(data["meta"]))
                return cls(
                    data["ids"],
                    data["embeddings"],
                    data["scenes"],
                    data["latents"].astype(np.float32),
                    data["lon"],
                    data["lat"],
                    str(meta["space_id"]),
                )
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"not a geosound knowledge base ({error})", path) from None
