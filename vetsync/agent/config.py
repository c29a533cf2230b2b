"""The agent's one configuration file (TOML): where VetSync is, the token, the source, the
schedule and the writer. Relative paths are read from the file's own folder.

    [vetsync]
    url = "https://vetsync.example.com"
    token = "vsa_..."            # or token_file = "/etc/vetsync-agent/token"
    source = "datapoint"         # the batch source VetSync knows the clinic's agent by

    [practice]
    kind = "sql"                 # sql | csv
    url = "sqlite:///cornerstone.sqlite3"   # sql: any SQLAlchemy URL, a read-only user
    folder = "exports/"          # csv: the folder of exports
    mapping = "cornerstone.toml"

    [schedule]
    interval = 120               # seconds between runs (default 2 minutes)

See docs/agent.md for every key.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10, still on many clinics' servers
    import tomli as tomllib

SOURCES = ("syncvet", "vetdata", "datapoint", "vetsuccess")
WRITERS = ("file", "table", "none")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key to change."""


def load_toml(path: Path, *, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"The {what} {path} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The {what} {path} is not valid TOML: {exc}.") from exc
    except OSError as exc:
        raise ConfigError(f"The {what} {path} cannot be read: {exc}.") from exc


@dataclass(frozen=True)
class Config:
    path: Path
    url: str
    token: str
    source: str
    practice_kind: str
    practice_url: str
    practice_folder: Path | None
    mapping_path: Path
    interval: float
    state_path: Path
    part_size: int
    timeout: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    apply_wait: float
    writer: str
    writeback_folder: Path | None
    writeback_format: str
    writeback_url: str

    @property
    def api(self) -> str:
        return self.url.rstrip("/") + "/api/agent/v1/"


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table.")
    return value


def _text(section: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if value is None:
        raise ConfigError(f"[{where}] {key} is required.")
    if not isinstance(value, str):
        raise ConfigError(f"[{where}] {key} must be text.")
    return value.strip()


def _number(section: dict[str, Any], key: str, where: str, default: float, low: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ConfigError(f"[{where}] {key} must be a number of at least {low} (got {value!r}).")
    return float(value)


def _path(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _token(vetsync: dict[str, Any], base: Path) -> str:
    if "token_file" in vetsync:
        token_path = _path(base, _text(vetsync, "token_file", "vetsync"))
        try:
            return token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"[vetsync] token_file {token_path} cannot be read: {exc}.") from exc
    return _text(vetsync, "token", "vetsync", os.environ.get("VETSYNC_AGENT_TOKEN"))


def load_config(path: Path) -> Config:
    """Read and check the configuration file; ``ConfigError`` says what to change."""
    raw = load_toml(path, what="configuration file")
    base = path.resolve().parent
    vetsync, practice = _section(raw, "vetsync"), _section(raw, "practice")
    schedule, delivery = _section(raw, "schedule"), _section(raw, "delivery")
    writeback = _section(raw, "writeback")
    url = _text(vetsync, "url", "vetsync")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"[vetsync] url must start with https:// (got {url!r}).")
    source = _text(vetsync, "source", "vetsync")
    if source not in SOURCES:
        raise ConfigError(f"[vetsync] source must be one of {', '.join(SOURCES)} (got {source!r}).")
    kind = _text(practice, "kind", "practice")
    if kind not in ("sql", "csv"):
        raise ConfigError(f"[practice] kind must be sql or csv (got {kind!r}).")
    folder = practice.get("folder")
    if kind == "csv" and not folder:
        raise ConfigError("[practice] folder is required when kind = csv.")
    if kind == "sql" and not practice.get("url"):
        raise ConfigError("[practice] url (a SQLAlchemy database URL) is required when kind = sql.")
    writer = _text(writeback, "writer", "writeback", "file")
    if writer not in WRITERS:
        raise ConfigError(f"[writeback] writer must be one of {', '.join(WRITERS)}.")
    wb_format = _text(writeback, "format", "writeback", "csv")
    if wb_format not in ("csv", "jsonl"):
        raise ConfigError("[writeback] format must be csv or jsonl.")
    if writer == "table" and not writeback.get("url"):
        raise ConfigError(
            "[writeback] url is required with writer = table (a database user that may write "
            "only to the import table)."
        )
    return Config(
        path=path,
        url=url,
        token=_token(vetsync, base),
        source=source,
        practice_kind=kind,
        practice_url=_text(practice, "url", "practice", ""),
        practice_folder=_path(base, str(folder)) if folder else None,
        mapping_path=_path(base, _text(practice, "mapping", "practice")),
        interval=_number(schedule, "interval", "schedule", 120, 1),
        state_path=_path(base, _text(raw.get("state", {}), "path", "state", "agent-state.sqlite3")),
        part_size=int(_number(delivery, "part_size", "delivery", 1000, 1)),
        timeout=_number(delivery, "timeout", "delivery", 60, 1),
        max_attempts=int(_number(delivery, "max_attempts", "delivery", 6, 1)),
        backoff_base=_number(delivery, "backoff_base", "delivery", 2, 0),
        backoff_max=_number(delivery, "backoff_max", "delivery", 300, 0),
        apply_wait=_number(delivery, "apply_wait", "delivery", 900, 0),
        writer=writer,
        writeback_folder=_path(base, _text(writeback, "folder", "writeback", "writeback")),
        writeback_format=wb_format,
        writeback_url=_text(writeback, "url", "writeback", ""),
    )
