"""The dossier's lifecycle (vòng đời hồ sơ): the one transition table. Intake, which owns the dossier's
status, applies it; every other service reads the resulting status from intake's events
(`DossierEvent.status`, `dossier_version`) instead of re-deriving it."""
from __future__ import annotations

from motcua.contracts.events import STATUS_CODES

# action -> the statuses it may start from, and the status it leads to. None: supplement resumes the
# status recorded when the supplement was asked for; reschedule and rate keep the status.
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "submit": (frozenset({None}), "submitted"),
    "receive": (frozenset({"submitted"}), "received"),
    "refuse": (frozenset({"submitted"}), "refused"),
    "request_supplement": (frozenset({"submitted", "received", "processing"}), "supplement_requested"),
    "supplement": (frozenset({"supplement_requested"}), None),
    "withdraw": (frozenset({"submitted", "received", "processing", "supplement_requested", "awaiting_payment"}),
                 "withdrawn"),
    "start_processing": (frozenset({"received"}), "processing"),
    "require_payment": (frozenset({"processing"}), "awaiting_payment"),
    "confirm_payment": (frozenset({"awaiting_payment"}), "processing"),
    "stop": (frozenset({"received", "processing", "supplement_requested", "awaiting_payment"}), "stopped"),
    "result_ready": (frozenset({"received", "processing"}), "result_ready"),
    "return": (frozenset({"result_ready"}), "returned"),
    "reschedule": (frozenset({"received", "processing", "supplement_requested", "awaiting_payment"}), None),
    "rate": (frozenset({"returned"}), None),
}
# What a person may do to a dossier from the counter or the portal (the rest follows workflow's events).
STAFF_ACTIONS = ("receive", "refuse", "request_supplement", "supplement", "withdraw", "confirm_payment", "return",
                 "reschedule")
RESUMABLE = ("received", "processing")  # where a supplement may resume a dossier
# A fee due at submission (a level-4 procedure's lệ phí) is paid online while the dossier is open (not
# refused, withdrawn, stopped, returned): intake takes it, the portal offers it.
FEE_PAYABLE = frozenset({"submitted", "received", "processing", "supplement_requested", "awaiting_payment",
                         "result_ready"})

assert all(target is None or target in STATUS_CODES for _, target in TRANSITIONS.values())


def may(action: str, status: str | None) -> bool:
    return status in TRANSITIONS[action][0]


def allowed_actions(status: str) -> list[str]:
    """The staff actions open from `status`, in the table's order (the console's buttons)."""
    return [action for action in STAFF_ACTIONS if may(action, status)]
