"""What the local Slack workspace records: Web API calls, messages, files, views, sockets.

Plain data, read by tests and by the console's feed; readers of a workspace get copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One Web API request as the workspace received it.

    ``params`` merges the query string and the body (form or JSON); JSON-valued form
    fields (``blocks``, ``attachments``, ``view``, ``files``, ``metadata``) are decoded.
    The token is not part of ``params`` (it travels in ``headers["Authorization"]``).
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass(frozen=True)
class MessageVersion:
    text: str
    blocks: list[dict[str, Any]]
    at: float
    method: str  # "chat.postMessage" or "chat.update"


@dataclass
class Message:
    """A message's current state; ``history`` lists every version, oldest first."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    user: str
    history: list[MessageVersion]
    metadata: dict[str, Any] | None = None

    @property
    def edited(self) -> bool:
        return len(self.history) > 1


@dataclass(frozen=True)
class Ephemeral:
    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    at: float


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    title: str | None = None
    data: bytes | None = None
    channel: str | None = None
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    alt_txt: str | None = None
    completed: bool = False
    created: float = 0.0
    uploaded_at: float | None = None
    completed_at: float | None = None


@dataclass
class View:
    """A modal opened with views.open/views.push; ``history`` holds every version."""

    id: str
    view: dict[str, Any]
    trigger_id: str | None
    opened_at: float
    history: list[dict[str, Any]]
    user: str | None = None  # whom the trigger_id was issued to (None: unknown)
    channel: str | None = None
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # a submission's field errors

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata", ""))


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response_url; ``status`` is what the workspace answered."""

    response_id: str
    body: Any
    headers: dict[str, str]
    at: float
    status: int


@dataclass(frozen=True)
class SocketEnvelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    connection_id: int
    accepts_response_payload: bool


@dataclass(frozen=True)
class SocketAck:
    """An acknowledgement a Socket Mode client sent back."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    connection_id: int
    envelope: SocketEnvelope | None

    @property
    def latency(self) -> float | None:
        """Seconds between the envelope leaving the workspace and its ack arriving."""
        return None if self.envelope is None else self.at - self.envelope.sent_at


@dataclass(frozen=True)
class SocketConnection:
    id: int
    connected_at: float
    closed_at: float | None
    draining: bool  # a disconnect message was sent; Slack routes nothing more to it

    @property
    def open(self) -> bool:
        return self.closed_at is None
