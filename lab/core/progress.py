"""Lesson progress, remembered between sessions in `lessons.json` beside the run history.

A convenience, never a requirement: an unreadable or unwritable file is reported once
(`problem`) and the lessons carry on with progress kept in memory only. Writes go to a
temporary file first and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

FILE_NAME = "lessons.json"
FORMAT = "conlab-lessons"
VERSION = 1


def progress_path() -> str:
    from lab.core.history import data_dir

    return os.path.join(data_dir(), FILE_NAME)


class Progress:
    """Per lesson: the last prediction, the measured answer(s), whether they matched."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or progress_path()
        self.problem: str | None = None  # one line: why progress is not being saved
        self.lessons: dict[str, dict[str, Any]] = {}
        self._load()

    # Reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.problem = "progress not read from %s: %s" % (self.path, _why(exc))
            return
        lessons = data.get("lessons") if isinstance(data, dict) else None
        if not isinstance(lessons, dict) or data.get("format") != FORMAT:
            self.problem = "progress not read from %s: not a lessons file" % self.path
            return
        self.lessons = {k: v for k, v in lessons.items() if isinstance(v, dict)}

    def entry(self, lesson_id: str) -> dict[str, Any]:
        return self.lessons.get(lesson_id, {})

    def status(self, lesson_id: str) -> str:
        """new, predicted (not yet measured), right, surprised (measured otherwise)."""
        entry = self.entry(lesson_id)
        if "right" in entry:
            return "right" if entry["right"] else "surprised"
        if "predicted" in entry:
            return "predicted"
        return "new"

    def done(self, lesson_id: str) -> bool:
        return "right" in self.entry(lesson_id)

    def done_count(self) -> int:
        return sum(1 for e in self.lessons.values() if "right" in e)

    # Writing ---------------------------------------------------------------------------
    def predicted(self, lesson_id: str, choice: int) -> None:
        entry = self.lessons.setdefault(lesson_id, {})
        entry["predicted"] = choice
        entry["predicted_at"] = time.time()
        self.save()

    def measured(self, lesson_id: str, predicted: int | None, answers: tuple[int, ...],
                 python: str = "") -> None:
        entry = self.lessons.setdefault(lesson_id, {})
        if predicted is not None:
            entry["predicted"] = predicted
        entry["measured"] = list(answers)
        entry["right"] = predicted is not None and predicted in answers
        entry["python"] = python
        entry["done_at"] = time.time()
        self.save()

    def save(self) -> bool:
        """Write the file atomically; False (and `problem` set) if it cannot be written."""
        data = {"format": FORMAT, "version": VERSION, "lessons": self.lessons}
        folder = os.path.dirname(self.path) or "."
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".lessons-", suffix=".json", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            self.problem = "progress not saved to %s: %s" % (self.path, _why(exc))
            return False
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return True


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
