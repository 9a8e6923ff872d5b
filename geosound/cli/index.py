"""``geosound index build|search``: audio banks in Sat2Sound's shared space."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geosound.cli.checks import (
    check_checkpoint_file,
    check_input_file,
    check_output_folder,
    option_error,
)
from geosound.cli.progress import ProgressMode, ProgressOption, emit_json, progress_reporter
from geosound.cli.resources import DeviceOption, ThreadsOption, use_resources

if TYPE_CHECKING:  # the CLI imports its heavy libraries inside the commands, to start fast
    import numpy as np
    import pandas as pd

index_app = typer.Typer(help="Audio banks: index recordings, search them.", no_args_is_help=True)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
BANK_KINDS = ("auto", "flat", "ivf", "hnsw", "ivfpq")
CheckpointOption = Annotated[
    Path | None, typer.Option("--checkpoint", help="Sat2Sound checkpoint (default: shipped).")
]


METADATA_TABLES = ("index.csv", "metadata.csv", "metadata.parquet")
"""Tables a folder of recordings may carry (ESC-50's ``index.csv`` and common layouts)."""

COLUMN_ALIASES = {
    "path": ("path", "filename", "file", "audio", "audio_path"),
    "label": ("label", "class", "category", "tags"),
    "licence": ("licence", "license"),
}
"""Column names of recordings tables in the wild, mapped to the bank's own names."""


def recordings_table(source: Path) -> pd.DataFrame:
    """The recordings to index: every audio file under a folder, or the rows of a table.

    A table (CSV or Parquet) needs a path column (``path``, ``filename``, …; relative paths
    resolve against the table's folder) and may carry a label (``label``, ``class``,
    ``category``), a licence (``licence``/``license``), ``lon``, ``lat``; all its columns are
    kept as bank metadata. A folder with such a table inside (:data:`METADATA_TABLES`) is
    read through it, so ESC-50's clips come with their classes and licences; audio files the
    table does not list are indexed too, without labels.
    """
    import pandas as pd

    from geosound.errors import InputError

    if not source.exists():
        raise InputError("not found", source)
    if not source.is_dir():
        return _read_recordings_table(source)
    files = sorted(p.resolve() for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(
            f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this folder", source
        )
    listed = next((source / n for n in METADATA_TABLES if (source / n).is_file()), None)
    if listed is None:
        return pd.DataFrame({"path": [str(p) for p in files]})
    table = _read_recordings_table(listed)
    known = set(table["path"])
    unlisted = pd.DataFrame({"path": [str(p) for p in files if str(p) not in known]})
    return pd.concat([table, unlisted], ignore_index=True)


def _read_recordings_table(path: Path) -> pd.DataFrame:
    """A recordings table with the bank's column names and absolute paths."""
    import pandas as pd

    from geosound.errors import InputError

    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputError(f"not a readable recordings table ({error})", path) from None
    for name, aliases in COLUMN_ALIASES.items():
        present = next((a for a in aliases if a in table.columns), None)
        if present is not None and name not in table.columns:
            table = table.rename(columns={present: name})
    if "path" not in table.columns:
        raise InputError(
            f"a recordings table needs a path column ({', '.join(COLUMN_ALIASES['path'])})", path
        )
    if table.empty:
        raise InputError("the recordings table is empty", path)
    table["path"] = [str((path.parent / p).resolve()) for p in table["path"].astype(str)]
    missing = [p for p in table["path"] if not Path(p).is_file()]
    if missing:
        raise InputError(f"{len(missing)} listed recording(s) not found, first {missing[0]}", path)
    return table


@index_app.command("build")
def build_command(
    source: Annotated[Path, typer.Argument(help="Folder of recordings, or a CSV/Parquet table.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bank folder to write.")],
    checkpoint: CheckpointOption = None,
    kind: Annotated[
        str,
        typer.Option(
            help="auto (flat below 200,000 recordings, else ivf), flat (exact), ivf (IVF-PQ "
            "re-ranked exactly), hnsw or ivfpq."
        ),
    ] = "auto",
    shard_size: Annotated[
        int | None,
        typer.Option(
            help="Split the bank into shards of this many recordings, searched as one.", min=1
        ),
    ] = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = ProgressMode.bar,
) -> None:
    """Embed recordings into the shared space and save a faiss bank with their metadata."""
    if kind not in BANK_KINDS:
        raise option_error("--kind", f"{kind!r} is not one of {', '.join(BANK_KINDS)}")
    check_output_folder(out, "--out")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")
    from geosound.audio import read_header
    from geosound.progress import stage
    from geosound.retrieval.bank import AudioBank
    from geosound.retrieval.shards import ShardedBank
    from geosound.space.shared import SharedSpace

    table = recordings_table(source)
    # Every file's header is checked before the model loads; a file that fails later, in
    # decoding, is an AudioError raised while embedding — still before the bank is written.
    # (Decoding every file here as well cost a second full decode of the collection.)
    for path in table["path"]:
        read_header(path)
    use_resources(threads, device)
    space = SharedSpace.from_checkpoint(checkpoint)
    with progress_reporter(progress, "index") as report:
        report(0.0, f"embedding {len(table)} recordings")
        vectors = space.embed_recordings(list(table["path"]), progress=stage(report, 0.0, 0.9))
        report(0.9, "building the index")
        bank: AudioBank | ShardedBank
        if shard_size is None:
            bank = AudioBank.build(vectors, table, space.space_id, kind=kind)  # type: ignore[arg-type]
            bank.save(out)
        else:
            starts = range(0, len(table), shard_size)
            parts = ((vectors[i : i + shard_size], table.iloc[i : i + shard_size]) for i in starts)
            bank = ShardedBank.build(out, parts, space.space_id, kind=kind)  # type: ignore[arg-type]
        report(1.0, "saved")
    if progress is ProgressMode.json:
        emit_json({"ok": True, "outputs": [str(out)], "count": len(bank)})
        return
    layout = f"{len(bank.shards)} shards ({kind})" if isinstance(bank, ShardedBank) else bank.kind
    typer.echo(f"geosound index build: {len(bank)} recordings, {layout} index, {out}")
    typer.echo(f"  space {space.space_id}")


@index_app.command("search")
def search_command(
    bank_folder: Annotated[Path, typer.Argument(help="Bank folder from `geosound index build`.")],
    text: Annotated[str | None, typer.Option(help="Search by a description of a sound.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Search by a recording.")] = None,
    image: Annotated[Path | None, typer.Option(help="Search by an image chip (GeoTIFF).")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits.", min=1)] = 10,
    checkpoint: CheckpointOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
) -> None:
    """Find the recordings nearest to a text, a recording or an image chip."""
    from geosound.errors import InputError
    from geosound.retrieval.shards import open_bank
    from geosound.space.prompts import query_vectors
    from geosound.space.shared import SharedSpace

    given = [q for q in (text, audio, image) if q is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --text, --audio, --image")
    if not bank_folder.is_dir():
        what = "is not a folder" if bank_folder.exists() else "not found"
        raise InputError(
            f"audio bank {what} (give a folder from `geosound index build`)", bank_folder
        )
    if audio is not None:
        check_input_file(audio, "recording", "--audio")
    if image is not None:
        check_input_file(image, "image chip", "--image")
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, "--checkpoint")
    use_resources(threads, device)
    space = SharedSpace.from_checkpoint(checkpoint)
    bank = open_bank(bank_folder, expected_space_id=space.space_id)
    if text is not None:
        query = query_vectors(space.embed_texts, [text])
    elif audio is not None:
        query = space.embed_recordings([audio])
    elif image is not None:
        query = space.embed_images(read_chip_rgb(image)).embedding.numpy()
    hits = bank.search(query, k=k).to_frame()
    if as_json:
        typer.echo(hits.to_json(orient="records", indent=2))
        return
    columns = [c for c in ("rank", "score", "label", "path") if c in hits.columns]
    typer.echo(hits[columns].to_string(index=False))


def read_chip_rgb(path: Path) -> np.ndarray:
    """An image chip as one (1, 3, H, W) RGB batch, scaled with the preset its bands suggest."""
    from geosound.geo.images import read_image_ref

    return read_image_ref(str(path))[None]
