"""PNG pictures of discovered cohorts (matplotlib, Agg backend), drawn on the discovery speakers.

- `plot_geo_map`: speakers at (lon, lat) coloured by region, each region's box, its rank and
  WER written inside.
- `plot_scan_map`: speakers coloured by cohort (inside / outside the scan's rectangle) and
  the rectangle (dashed when it is not significant).
- `plot_zip_partition`: zip-code centroids (census lat/lon) coloured by side of the chosen
  partition, sized by their number of speakers.
- `plot_embedding_projection`: a 2-D PCA projection of the speaker embeddings coloured by
  cluster, with the projected centroids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from asrtools.fairness.auto import AutoDiscovery
from asrtools.fairness.discovery import Discovery
from asrtools.fairness.geo import GeoDiscovery
from asrtools.fairness.geodemographic import GeodemographicDiscovery
from asrtools.fairness.scan import ScanDiscovery
from asrtools.fairness.speakers import LAT_KEY, LON_KEY, SpeakerTable
from asrtools.scoring.plots import _save, plt


def _colours(discovery: Discovery) -> Dict[str, object]:
    """Rank label -> colour (rank1 first in the colour cycle)."""
    cmap = plt.get_cmap("tab10" if len(discovery.cohorts) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(discovery.ranking)}


_LEGEND_TITLE = "rank (1 = worst WER on these speakers)"


def _wer_text(discovery: Discovery) -> Dict[str, str]:
    labels = discovery.labels
    return {labels[c.key]: (f"{labels[c.key]}: {100 * c.wer:.1f}%" if c.wer is not None else labels[c.key])
            + (" (flagged)" if c.flags and not c.eligible else "") for c in discovery.cohorts}


def _scatter(ax: "plt.Axes", xy: np.ndarray, labels: List[str], discovery: Discovery) -> None:
    colours, text = _colours(discovery), _wer_text(discovery)
    for label in discovery.ranking:
        mask = np.asarray([x == label for x in labels], dtype=bool)
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=16, color=colours[label], label=text[label], edgecolors="none")
    ax.legend(fontsize=7, title=_LEGEND_TITLE, title_fontsize=7, loc="best")


def plot_geo_map(discovery: GeoDiscovery, table: SpeakerTable, path: Path) -> None:
    """Speakers (lon, lat) coloured by region, region boxes with rank and WER, written to `path`."""
    coords = table.coordinates()
    labels_of = discovery.assign_table(table)
    labels = [labels_of[s] for s in table.speakers]
    fig, ax = plt.subplots(figsize=(8, 6))
    _scatter(ax, coords[:, ::-1], labels, discovery)
    margin_lat = 0.05 * (np.ptp(coords[:, 0]) or 1.0)
    margin_lon = 0.05 * (np.ptp(coords[:, 1]) or 1.0)
    lat_lim = (coords[:, 0].min() - margin_lat, coords[:, 0].max() + margin_lat)
    lon_lim = (coords[:, 1].min() - margin_lon, coords[:, 1].max() + margin_lon)
    colours, text, rank = _colours(discovery), _wer_text(discovery), discovery.labels
    for leaf in discovery.leaves:
        (lat_lo, lat_hi), (lon_lo, lon_hi) = leaf.bounds["lat"], leaf.bounds["lon"]
        lat_lo, lat_hi = max(lat_lo, lat_lim[0]), min(lat_hi, lat_lim[1])
        lon_lo, lon_hi = max(lon_lo, lon_lim[0]), min(lon_hi, lon_lim[1])
        label = rank[leaf.key]
        ax.add_patch(plt.Rectangle((lon_lo, lat_lo), lon_hi - lon_lo, lat_hi - lat_lo, fill=False,
                                   edgecolor=colours[label], linewidth=1.5))
        ax.text((lon_lo + lon_hi) / 2, (lat_lo + lat_hi) / 2, text[label], ha="center", va="center", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"})
    ax.set_xlim(*lon_lim)
    ax.set_ylim(*lat_lim)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Geographic regions ({len(discovery.leaves)} leaves; WER on the discovery speakers)")
    fig.tight_layout()
    _save(fig, Path(path))


def plot_scan_map(discovery: ScanDiscovery, table: SpeakerTable, path: Path) -> None:
    """Speakers (lon, lat) coloured by cohort and the scan's best rectangle (dashed when not significant)."""
    coords = table.coordinates()
    labels_of = discovery.assign_table(table)
    fig, ax = plt.subplots(figsize=(8, 6))
    _scatter(ax, coords[:, ::-1], [labels_of[s] for s in table.speakers], discovery)
    if discovery.result.get("statistic") is not None:
        box = discovery.rectangle
        lat = [min(max(x, coords[:, 0].min()), coords[:, 0].max()) for x in box["lat"]]
        lon = [min(max(x, coords[:, 1].min()), coords[:, 1].max()) for x in box["lon"]]
        ax.add_patch(plt.Rectangle((lon[0], lat[0]), lon[1] - lon[0], lat[1] - lat[0], fill=False, edgecolor="black",
                                   linewidth=1.5, linestyle="-" if discovery.significant else "--"))
    p = discovery.result.get("p_value")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Spatial scan: best rectangle" + ("" if p is None else f" (Monte-Carlo p = {p:.3g})"))
    fig.tight_layout()
    _save(fig, Path(path))


def plot_zip_partition(discovery: GeodemographicDiscovery, table: SpeakerTable, path: Path) -> None:
    """Zip centroids coloured by side of the chosen partition, sized by speakers, written to `path`."""
    rank = discovery.labels
    counts: Dict[str, int] = {}
    for code in table.zip_codes():
        counts[code] = counts.get(code, 0) + 1
    zips = [z for z, row in sorted(table.zipcodes.items())
            if isinstance(row.get(LAT_KEY), float) and isinstance(row.get(LON_KEY), float)]
    fig, ax = plt.subplots(figsize=(8, 6))
    colours, text = _colours(discovery), _wer_text(discovery)
    for label in discovery.ranking:
        side = [z for z in zips if rank[discovery.zip_sides[z]] == label]
        if not side:
            continue
        xy = np.asarray([[table.zipcodes[z][LON_KEY], table.zipcodes[z][LAT_KEY]] for z in side]).reshape(-1, 2)
        sizes = [12 + 10 * counts.get(z, 0) for z in side]
        ax.scatter(xy[:, 0], xy[:, 1], s=sizes, color=colours[label], alpha=0.7, edgecolors="black",
                   linewidths=0.3, label=text[label])
    ax.legend(fontsize=7, title=_LEGEND_TITLE, title_fontsize=7, loc="best")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Zip codes by {discovery.rule.describe()} (marker size: discovery speakers)", fontsize=10)
    fig.tight_layout()
    _save(fig, Path(path))


def plot_embedding_projection(discovery: AutoDiscovery, table: SpeakerTable, path: Path) -> None:
    """2-D PCA projection of the embeddings coloured by cluster (x: centroids), written to `path`."""
    from sklearn.decomposition import PCA

    vectors = table.vectors if table.vectors is not None else np.zeros((0, discovery.centroids.shape[1]))
    n_components = max(1, min(2, vectors.shape[0], vectors.shape[1]))
    pca = PCA(n_components=n_components, random_state=0).fit(vectors)

    def project(x: np.ndarray) -> np.ndarray:
        out = pca.transform(x)
        return out if out.shape[1] == 2 else np.concatenate([out, np.zeros((len(out), 1))], axis=1)

    labels_of = discovery.assign_table(table)
    labels = [labels_of[s] for s in table.speakers]
    fig, ax = plt.subplots(figsize=(7, 6))
    _scatter(ax, project(vectors), labels, discovery)
    centres = project(discovery.centroids)
    ax.scatter(centres[:, 0], centres[:, 1], marker="x", s=80, color="black", linewidths=1.5)
    explained = [f"{100 * v:.0f}%" for v in pca.explained_variance_ratio_]
    ax.set_xlabel(f"PC1 ({explained[0]} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]} of variance)" if len(explained) > 1 else "PC2")
    ax.set_title(f"Speaker embeddings, k = {len(discovery.centroids)} (x: centroids)")
    fig.tight_layout()
    _save(fig, Path(path))


def plot_discovery(discovery: Discovery, table: SpeakerTable, path: Path) -> None:
    """The method's picture (geo map, zip partition or embedding projection)."""
    if isinstance(discovery, GeoDiscovery):
        plot_geo_map(discovery, table, path)
    elif isinstance(discovery, ScanDiscovery):
        plot_scan_map(discovery, table, path)
    elif isinstance(discovery, GeodemographicDiscovery):
        plot_zip_partition(discovery, table, path)
    elif isinstance(discovery, AutoDiscovery):
        plot_embedding_projection(discovery, table, path)
    else:  # pragma: no cover - every registered method is handled above
        raise TypeError(f"no plot for {type(discovery).__name__}")



PLOT_NAMES = {"geo": "regions.png", "geodemographic": "zip_partition.png", "auto": "embedding_pca.png"}
