"""Consent, templates, PINs and door events behind one database thread.

Both stores are synchronous SQLite; the vault runs every call on its own
single thread (the template store's connection is not thread-safe), so the
event loop never blocks.  Enrollment checks for active consent in the same
thread call that writes the templates: no window where a withdrawal in
between could be missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from edge.door.errors import ConsentRequired, DoorUnavailable
from edge.door.store import Consent, DoorEvent, DoorStore, iso
from edge.ops import layout
from edge.throttle import Throttle
from vision.templates import TemplateStore, load_master_key

T = TypeVar("T")
DOOR_DB = layout.DOOR_DB
TEMPLATE_DB = layout.TEMPLATES_DB
MASTER_KEY = layout.KEY_FILE


class Vault:
    def __init__(self, data_dir: Path, master_key_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.master_key_file = master_key_file or data_dir / MASTER_KEY
        self._executor: ThreadPoolExecutor | None = None
        self._door: DoorStore | None = None
        self._templates: TemplateStore | None = None
        self._data_version = -1

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="door-db")
        await self._call(self._open)

    def _open(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._door = DoorStore(self.data_dir / DOOR_DB)
        key = load_master_key(self.master_key_file)
        self._templates = TemplateStore(self.data_dir / TEMPLATE_DB, key)
        (self.data_dir / TEMPLATE_DB).chmod(0o600)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def close() -> None:
            if self._door is not None:
                self._door.close()
            if self._templates is not None:
                self._templates.close()

        await asyncio.get_running_loop().run_in_executor(executor, close)
        executor.shutdown(wait=False)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise DoorUnavailable("the door vault is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def door(self) -> DoorStore:
        assert self._door is not None
        return self._door

    @property
    def templates(self) -> TemplateStore:
        assert self._templates is not None
        return self._templates

    # -- door events ---------------------------------------------------------------
    async def record_event(self, event: DoorEvent) -> DoorEvent:
        return await self._call(lambda: self.door.record_event(event))

    async def events(self, limit: int = 100, member_id: str | None = None) -> list[DoorEvent]:
        return await self._call(lambda: self.door.events(limit, member_id))

    # -- consent -------------------------------------------------------------------------
    async def grant_consent(
        self, member_id: str, text_version: str, purpose: str, retention_days: int, witness: str
    ) -> Consent:
        return await self._call(
            lambda: self.door.grant_consent(
                member_id, text_version, purpose, retention_days, witness
            )
        )

    async def consent_history(self, member_id: str) -> list[dict[str, Any]]:
        return await self._call(lambda: self.door.consent_history(member_id))

    async def active_consent(self, member_id: str) -> Consent | None:
        return await self._call(lambda: self.door.active_consent(member_id))

    async def withdraw_consent(self, member_id: str, witness: str, note: str) -> int:
        """Record the withdrawal, then destroy the templates at once; returns templates gone."""

        def withdraw() -> int:
            self.door.withdraw_consent(member_id, witness, note)
            return self.templates.destroy_member(member_id, "consent_withdrawn")

        return await self._call(withdraw)

    async def destroy_templates(self, member_id: str, reason: str) -> int:
        return await self._call(lambda: self.templates.destroy_member(member_id, reason))

    # -- templates -------------------------------------------------------------------------
    async def enroll(
        self, member_id: str, embeddings: npt.NDArray[np.float32], by: str
    ) -> list[str]:
        def enroll() -> list[str]:
            consent = self.door.active_consent(member_id)
            if consent is None:
                raise ConsentRequired(
                    f"member {member_id} has no active consent to face access; record it first",
                    field="member_id",
                )
            ids = self.templates.enroll(member_id, embeddings, f"consent-{consent.id}")
            self.door.record_enrollment(member_id, consent.id, len(ids), by)
            return ids

        return await self._call(enroll)

    async def load_templates(self) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32]]:
        def load() -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float32]]:
            self._data_version = self._template_data_version()
            return self.templates.load_all()

        return await self._call(load)

    def _template_data_version(self) -> int:
        # Changes when another connection (the CLI) commits to the template file.
        conn = self.templates._conn
        return int(conn.execute("PRAGMA data_version").fetchone()[0]) + self.templates.count()

    async def templates_changed(self) -> bool:
        return await self._call(lambda: self._template_data_version() != self._data_version)

    async def template_count(self, member_id: str | None = None) -> int:
        return await self._call(lambda: self.templates.count(member_id))

    async def enrolled_members(self) -> list[str]:
        ids, _ = await self._call(self.templates.load_all)
        return sorted({str(i) for i in ids})

    async def expired_members(self, retention_days: int, now: float | None = None) -> list[str]:
        """Enrolled members whose last visit (or enrollment) is older than their retention."""
        members = await self.enrolled_members()
        at = now or time.time()

        def expired() -> list[str]:
            out = []
            for member_id in members:
                consent = self.door.active_consent(member_id)
                days = retention_days
                if consent is not None:
                    days = min(days, consent.retention_days)
                last = max(
                    self.door.last_visit(member_id) or 0.0,
                    self.door.last_enrollment(member_id) or 0.0,
                )
                if at - last > days * 86400:
                    out.append(member_id)
            return out

        return await self._call(expired)

    # -- PINs ------------------------------------------------------------------------------
    async def set_pin(self, member_id: str, pin_hash: str, by: str) -> None:
        await self._call(lambda: self.door.set_pin(member_id, pin_hash, by))

    async def pin_hash(self, member_id: str) -> str | None:
        return await self._call(lambda: self.door.pin_hash(member_id))

    async def pin_locked_until(self, keys: list[str]) -> float:
        return await self._call(lambda: self.door.pin_locked_until(keys))

    async def pin_failure(self, keys: list[str], throttle: Throttle) -> None:
        await self._call(lambda: self.door.pin_failure(keys, throttle))

    async def pin_success(self, key: str) -> None:
        await self._call(lambda: self.door.pin_success(key))

    # -- members page and export -----------------------------------------------------------
    async def overview(self) -> dict[str, dict[str, Any]]:
        """member id -> consent status and template count (members with any record)."""

        def overview() -> dict[str, dict[str, Any]]:
            latest = self.door.consent_members()
            out: dict[str, dict[str, Any]] = {}
            for member_id, row in latest.items():
                out[member_id] = {
                    "consent": "active" if row["action"] == "grant" else "withdrawn",
                    "consent_since": row["recorded_at"],
                    "templates": self.templates.count(member_id),
                    "pin": self.door.pin_info(member_id) is not None,
                }
            return out

        return await self._call(overview)

    async def export(self, member_id: str, event_limit: int = 1000) -> dict[str, Any]:
        """What is stored about the member, without any template bytes."""

        def export() -> dict[str, Any]:
            return {
                "consent_history": self.door.consent_history(member_id),
                "face_templates": {
                    "count": self.templates.count(member_id),
                    "stored_as": "AES-GCM encrypted 128-d face descriptors; never exported",
                    "enrollments": self.door.enrollments(member_id),
                    "destructions": [
                        {"reason": r, "template_count": n, "destroyed_at": at}
                        for r, n, at in self.templates.destructions(member_id)
                    ],
                },
                "door_pin": self.door.pin_info(member_id),
                "door_events": [e.as_dict() for e in self.door.events(event_limit, member_id)],
                "exported_at": iso(time.time()),
            }

        return await self._call(export)
