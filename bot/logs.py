"""Log output for `serve`: text lines for people, or one JSON object a line for pipelines."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY_LIBRARIES = ("apscheduler", "httpx", "httpcore")  # routine lines at INFO


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` plus ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # APScheduler logs every run of every job at INFO: several lines a second that bury
    # what the bot itself says. Its warnings (missed runs, job errors) still show. And
    # httpx logs every request at INFO: ten lines a diagnosis, one per Prometheus query. A
    # failed query is reported by the bot itself, with what it was for.
    for chatty in NOISY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
