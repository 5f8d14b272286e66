"""The sample forms of docs/forms/: each of forms 01–07 rendered from dossiers taken down its path (the
same dossiers and names the form tests use), written as PDF, and as PNG where poppler's `pdftoppm` is
installed. Run: `.venv/bin/python -m tests.intake.form_samples docs/forms`."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy.orm import Session

from motcua import migrate
from motcua.calendar import WorkingCalendar
from motcua.db import make_engine
from services.intake import dossiers, forms
from services.intake.blobs import LocalBlobStore
from services.intake.catalog import Catalog
from services.intake.models import Base
from services.intake.repository import IntakeUnitOfWork
from tests.intake.conftest import CATALOG_DIR
from tests.intake.test_dossiers import COMMUNE, MONDAY_9AM, RECEPTIONIST, submit
from tests.intake.test_forms import LAND_OFFICE, hand_overs, officers


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def samples(workdir: Path) -> dict[str, bytes]:
    """{file name: content} of every form, from a fresh SQLite database in `workdir`."""
    url = f"sqlite:///{workdir / 'intake.db'}"
    migrate.upgrade("intake", url)
    uow = IntakeUnitOfWork(Session(make_engine(url), expire_on_commit=False), "intake", Base.metadata)
    policy = dossiers.Policy(Catalog.load(CATALOG_DIR), WorkingCalendar.from_yaml(CATALOG_DIR / "calendar.yaml"),
                             "tracking-key", "search-key", LocalBlobStore(workdir / "blobs"))
    tz = policy.calendar.tz

    def received(now=MONDAY_9AM):
        dossier = submit(uow, policy)
        dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, now)
        return dossier

    def pdf(form, dossier, history=lambda code: []):
        return forms.render(form, dossier, policy.catalog, tz, history, officers,
                            lambda: dossiers.register_entry(uow, dossier, tz))

    receipt = received()
    supplement = received(utc(2026, 3, 2, 3))
    dossiers.request_supplement(uow, supplement.code, ["Bản sao Căn cước công dân", "Sơ đồ thửa đất"], None,
                                RECEPTIONIST, utc(2026, 3, 2, 3))
    refused = submit(uow, policy)
    dossiers.refuse(uow, refused.code, "Hồ sơ không thuộc thẩm quyền giải quyết", RECEPTIONIST, utc(2026, 3, 3, 3))
    late = received(utc(2026, 3, 3, 2))
    dossiers.delay_predicted(uow, {"dossier_code": late.code, "agency_code": COMMUNE, "current_agency_code": LAND_OFFICE,
                                   "due_at": late.due_at, "proposed_due_at": utc(2026, 3, 20, 9),
                                   "detected_at": utc(2026, 3, 12, 2)})
    dossiers.reschedule(uow, late.code, utc(2026, 3, 20, 9), "Chờ kết quả đo đạc thửa đất", RECEPTIONIST,
                        utc(2026, 3, 13, 2))
    stopped = received(utc(2026, 3, 4, 2))
    dossiers.task_assigned(uow, {"dossier_code": stopped.code, "agency_code": LAND_OFFICE, "step": "Thẩm định",
                                 "assigned_at": utc(2026, 3, 4, 2)})
    dossiers.processing_stopped(uow, {"dossier_code": stopped.code, "agency_code": LAND_OFFICE,
                                      "stopped_at": utc(2026, 3, 5, 2), "stopped_by": f"specialist@{LAND_OFFICE}",
                                      "reason": "Người nộp không bổ sung hồ sơ trong thời hạn"})
    uow.commit()
    first, last = date(2026, 3, 1), date(2026, 3, 31)
    rows = forms.log_rows(dossiers.log_book(uow, COMMUNE, first, last, RECEPTIONIST, policy.tree, tz),
                          policy.catalog, tz)
    made = {"mau-01.pdf": pdf("01", receipt), "mau-02.pdf": pdf("02", supplement), "mau-03.pdf": pdf("03", refused),
            "mau-04.pdf": pdf("04", late), "mau-05.pdf": pdf("05", stopped),
            "mau-06.pdf": pdf("06", receipt, hand_overs),
            "mau-07.pdf": forms.log_book_pdf(policy.catalog, COMMUNE, first, last, rows, tz, utc(2026, 3, 31, 9)),
            "mau-07.xlsx": forms.log_book_xlsx(policy.catalog, COMMUNE, first, last, rows)}
    uow.close()
    return made


def main(target: str) -> None:
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        made = samples(Path(workdir))
    for name, content in made.items():
        (out / name).write_bytes(content)
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        print("pdftoppm (poppler-utils) is not installed: PDFs only", file=sys.stderr)
        return
    for name in made:
        if name.endswith(".pdf"):  # the first page, 80 dpi: enough to read the layout
            subprocess.run([pdftoppm, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(out / name),
                            str(out / name.removesuffix(".pdf"))], check=True)


if __name__ == "__main__":
    main(sys.argv[1])
