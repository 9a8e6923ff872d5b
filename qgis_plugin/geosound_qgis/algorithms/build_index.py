"""Build an audio bank: embed a folder of recordings into the shared space, index them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsSettings,
)

from ..environment import BANK_SETTINGS_KEY
from ..runner import RunResult
from .base import GeosoundAlgorithm, Parameters

KINDS = ("auto", "flat", "hnsw", "ivfpq")


class BuildIndexAlgorithm(GeosoundAlgorithm):
    """``geosound index build``: the audio bank that retrieval and synthesis search."""

    ALG_NAME = "buildindex"
    ALG_TIP = "Build audio bank: index a folder or table of recordings for retrieval"
    ALG_ICON = "icons/build_bank.svg"
    ALG_DISPLAY = "Build audio bank"
    ALG_GROUP = "Audio banks"
    ALG_GROUP_ID = "banks"
    ALG_TAGS = ("index", "bank", "faiss", "recordings")
    ALG_HELP = (
        "Embeds recordings (WAV, FLAC, OGG, MP3, AIFF) into geosound's shared space and saves "
        "a searchable bank folder.\n\n"
        "Give a folder (every audio file under it) or a CSV/Parquet table with a 'path' column "
        "and optional 'label', 'licence', 'lon', 'lat' columns. Labels become the class_i "
        "attributes of retrieval outputs; licences go into every mix's sidecar.\n\n"
        "The new bank becomes the default audio bank of the Listen tool and the other "
        "algorithms (Plugins ▸ geosound ▸ Settings… changes it)."
    )

    INPUT = "INPUT"
    TABLE = "TABLE"
    KIND = "KIND"
    OUTPUT = "OUTPUT"
    COUNT = "COUNT"

    def define_parameters(self) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.INPUT, self.tr("Folder of recordings"),
                behavior=QgsProcessingParameterFile.Folder, optional=True,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterFile(
                self.TABLE, self.tr("…or a table (CSV/Parquet)"),
                behavior=QgsProcessingParameterFile.File,
                fileFilter="Tables (*.csv *.parquet)", optional=True,
            )
        )  # fmt: skip
        self.add_advanced(
            QgsProcessingParameterEnum(
                self.KIND, self.tr("Index kind"), options=list(KINDS), defaultValue=0
            )
        )
        self.add_checkpoint_parameter()
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.OUTPUT, self.tr("Audio bank folder"), defaultValue=default_bank_folder()
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, self.tr("Recordings indexed")))

    def build_arguments(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
    ) -> list[str]:
        folder = self.parameterAsFile(parameters, self.INPUT, context)
        table = self.parameterAsFile(parameters, self.TABLE, context)
        if bool(folder) == bool(table):
            raise QgsProcessingException(
                self.tr("Give either a folder of recordings or a table of recordings.")
            )
        kind = KINDS[self.parameterAsEnum(parameters, self.KIND, context)]
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        return ["index", "build", folder or table, "-o", out, "--kind", kind,
                *self.checkpoint_arguments(parameters, context)]  # fmt: skip

    def collect_outputs(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        work: Path,
        result: RunResult,
    ) -> dict[str, Any]:
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        count = int(result.payload.get("count") or 0)
        feedback.pushInfo(f"{count} recordings indexed into {out}")
        QgsSettings().setValue(BANK_SETTINGS_KEY, out)
        feedback.pushInfo(f"{out} is now the default audio bank (Listen tool, retrieval)")
        return {self.OUTPUT: out, self.COUNT: count}


def default_bank_folder() -> str:
    """A new folder under the QGIS profile (``geosound/banks/bank_<time>``), which outlives
    the session, unlike Processing's temporary outputs."""
    from ..profile import profile_folder

    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    return str(Path(profile_folder()) / "geosound" / "banks" / f"bank_{stamp}")
