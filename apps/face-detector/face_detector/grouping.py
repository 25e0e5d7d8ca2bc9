"""Grouping faces into people, as Immich and PhotoPrism do: a new face joins the nearest person whose centroid is
within `match_distance`; faces that join nobody stay in a pool, and DBSCAN over that pool (eps = match_distance,
min_samples = min_faces) makes new people once enough of them match. Faces already grouped are never moved by
this, so a user's naming and merging is never undone."""

from __future__ import annotations

import numpy as np


def as_vector(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def nearest(embedding: np.ndarray, people: dict[str, np.ndarray], max_distance: float) -> str | None:
    """The id of the person whose centroid is closest, if within max_distance."""
    if not people:
        return None
    ids = list(people)
    distances = np.linalg.norm(np.stack([people[i] for i in ids]) - embedding, axis=1)
    best = int(np.argmin(distances))
    return ids[best] if distances[best] <= max_distance else None


def clusters(pool: dict[str, np.ndarray], min_faces: int, eps: float) -> list[list[str]]:
    """Groups of at least min_faces face ids from the pool that DBSCAN puts together."""
    if len(pool) < max(min_faces, 1):
        return []
    from sklearn.cluster import DBSCAN

    ids = list(pool)
    labels = DBSCAN(eps=eps, min_samples=max(min_faces, 1), metric="euclidean").fit_predict(
        np.stack([pool[i] for i in ids]))
    groups: dict[int, list[str]] = {}
    for face_id, label in zip(ids, labels, strict=True):
        if label >= 0:
            groups.setdefault(int(label), []).append(face_id)
    return [g for g in groups.values() if len(g) >= min_faces]


def centroid(vectors: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(vectors), axis=0)


def rounded(vector: np.ndarray) -> list[float]:
    """Stored in the graph as a list of floats; 5 decimals is far below the model's noise."""
    return [round(float(x), 5) for x in vector]
