"""Citizens' notification choices per dossier (plain rules; recorded by repository.PreferenceRepository).

The record is append-only: each explicit choice is a row, the latest per channel counts; no row means
the citizen never chose, and notify messages them (the public service they asked for is the legal
basis). A choice equal to the one in force is not recorded again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CITIZEN_CHANNELS = ("email", "sms")
LEGAL_BASIS = ("Nghị định 118/2025/NĐ-CP (cơ chế một cửa): thông báo cho người nộp hồ sơ về việc tiếp nhận, "
               "bổ sung, từ chối và trả kết quả giải quyết thủ tục hành chính mà họ yêu cầu")


@dataclass(frozen=True)
class Choice:
    channel: str
    opted_out: bool
    source: str
    recorded_at: datetime


Choices = dict[str, "Choice | None"]  # channel → the choice in force (None: never chosen)


def in_force(recorded: list[Choice]) -> Choices:
    """The latest choice per channel, from the record in the order it was made."""
    latest: Choices = {channel: None for channel in CITIZEN_CHANNELS}
    for choice in recorded:
        latest[choice.channel] = choice
    return latest


def opted_out(current: Choices) -> set[str]:
    return {channel for channel, choice in current.items() if choice is not None and choice.opted_out}


def new_choices(current: Choices, wanted: dict[str, bool], source: str, now: datetime) -> list[Choice]:
    """What to record for `wanted` (channel → send on it?): a first explicit choice, or a change."""
    return [Choice(channel, not enabled, source, now) for channel, enabled in wanted.items()
            if current[channel] is None or current[channel].opted_out == enabled]


def view(current: Choices) -> dict:
    """What the citizen and officers see per channel."""
    return {channel: {"enabled": choice is None or not choice.opted_out, "legal_basis": LEGAL_BASIS,
                      "recorded_at": choice.recorded_at if choice else None,
                      "source": choice.source if choice else None}
            for channel, choice in current.items()}
