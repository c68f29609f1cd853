"""``batch_manifest.json`` and ``batch_manifest.csv``: every clip of the output folder with its
status, counts and error."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Iterable
from pathlib import Path

from retarget.files import write_text

from .clip import ClipRecord
from .discovery import ClipJob
from .files import read_json

MANIFEST_JSON = "batch_manifest.json"
MANIFEST_CSV = "batch_manifest.csv"
MANIFEST_FORMAT = "metrabs-batch-manifest"
MANIFEST_VERSION = 1
CSV_COLUMNS = ("clip", "status", "frames", "people", "seconds", "error", "input", "output")


class Manifest:
    """``batch_manifest.json`` + ``.csv`` in the output folder, rewritten atomically on update.

    Clips of earlier runs into the same folder are kept; this run's clips are added or updated.
    Updates are saved at once unless saving is slow compared with the time between updates (huge
    manifests): then at most ``SAVE_SHARE`` of the wall time goes to saving, and :meth:`flush`
    saves the rest. Nothing is lost by a crash in between: the per-clip records next to the
    outputs let the next run reuse every finished clip.
    """

    SAVE_SHARE = 0.1  # largest share of the wall time spent rewriting the manifest

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        self.json_path = self.out_dir / MANIFEST_JSON
        self.csv_path = self.out_dir / MANIFEST_CSV
        self.records: dict[str, ClipRecord] = {}
        self.model = ""
        self._dirty = False
        self._next_save = 0.0  # monotonic time before which updates are only kept in memory
        saved = read_json(self.json_path)
        if saved and saved.get("format") == MANIFEST_FORMAT:
            for item in saved.get("clips", []):
                record = ClipRecord.from_json(item)
                self.records[record.clip] = record
            self.model = str(saved.get("model", ""))

    def _relative(self, path: str) -> str:
        if not path:
            return ""
        try:
            return Path(path).resolve().relative_to(self.out_dir).as_posix()
        except ValueError:
            return path

    def add_jobs(self, jobs: Iterable[ClipJob]) -> None:
        """Enter this run's clips; a clip already listed keeps its last status until it finishes."""
        for job in jobs:
            record = self.records.get(job.name)
            if record is None or record.input != job.video:
                self.records[job.name] = ClipRecord(clip=job.name, input=job.video)

    def update(self, job: ClipJob, record: ClipRecord) -> None:
        """Set a clip's record (paths made relative to the output folder) and save."""
        record = dataclasses.replace(record, finished=round(time.time(), 3))
        if record.status in ("done", "skipped"):
            record.output = self._relative(job.output)
            record.cleaned_output = self._relative(job.cleaned_output or "")
        elif record.status == "cancelled":
            record.output = self._relative(job.output)
        if record.model:
            self.model = record.model
        self.records[job.name] = record
        self.save()

    def mark(self, job: ClipJob, status: str, worker: str = "") -> None:
        """Change only the status (``running``/``pending``) and save."""
        record = self.records.setdefault(job.name, ClipRecord(clip=job.name, input=job.video))
        record.status, record.worker = status, worker or record.worker
        self.save()

    def save(self) -> None:
        """Save now, or after a while when saving is slow (see the class docstring)."""
        self._dirty = True
        if time.monotonic() >= self._next_save:
            self.flush()

    def flush(self) -> None:
        """Write the JSON and CSV files now (atomically) if anything changed."""
        if not self._dirty:
            return
        started = time.monotonic()
        self._write()
        self._dirty = False
        spent = time.monotonic() - started
        self._next_save = time.monotonic() + spent / self.SAVE_SHARE - spent

    def _write(self) -> None:
        clips = [record.to_json() for record in self.records.values()]
        document = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "output_dir": str(self.out_dir),
            "model": self.model,
            "updated": round(time.time(), 3),
            "clips": clips,
        }
        # ASCII escapes: a file name that is not UTF-8 (kept as surrogates) survives the round trip
        write_text(self.json_path, json.dumps(document, indent=1))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for item in clips:
            writer.writerow({key: "" if item[key] is None else item[key] for key in CSV_COLUMNS})
        write_text(self.csv_path, table.getvalue())
