"""Example agency worker: the provincial tax office (Thuế tỉnh) plugged into the land-certificate
process. It takes its step's tasks from its own queue and answers with the fee notice (thông báo
nộp lệ phí trước bạ) computed from the applicant's declaration.

    MOTCUA_WORKER_TOKEN=<made by an operator: motcua tokens system 000.00.18.H56> \
        python -m motcua.run --worker workers.tax_office:TaxOfficeWorker
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from motcua.worker import TaskClient, task_handler

TAX_OFFICE = os.environ.get("TAX_OFFICE_AGENCY_CODE", "000.00.18.H56")
# Lệ phí trước bạ nhà, đất: 0.5 % of the land's value at the province's land price (Decree 10/2022).
REGISTRATION_FEE_RATE = Decimal("0.005")


class IncompleteDeclaration(ValueError):
    """The declaration lacks what the fee needs: the task stays for an officer (parked, not guessed)."""


@dataclass(frozen=True)
class FeeNotice:
    area_m2: Decimal
    price_per_m2: Decimal
    fee: Decimal

    @property
    def text(self) -> str:
        return (f"Thông báo nộp lệ phí trước bạ: {_vnd(self.fee)} đồng "
                f"(0,5% × {_number(self.area_m2)} m² × {_vnd(self.price_per_m2)} đồng/m²)")


def fee_notice(form: dict) -> FeeNotice:
    try:
        area = Decimal(str(form["land_area_m2"]))
        price = Decimal(str(form["land_price_vnd_per_m2"]))
    except (KeyError, InvalidOperation):
        raise IncompleteDeclaration("the declaration needs land_area_m2 and land_price_vnd_per_m2") from None
    if area <= 0 or price <= 0:
        raise IncompleteDeclaration("land area and price must be positive")
    fee = (area * price * REGISTRATION_FEE_RATE).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return FeeNotice(area, price, fee)


def _vnd(amount: Decimal) -> str:
    return f"{int(amount):,}".replace(",", ".")


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f").replace(".", ",")


class TaxOfficeWorker:
    name = "tax_office_worker"
    tasks = TaskClient()

    @task_handler(TAX_OFFICE)
    def on_task(self, task):
        notice = fee_notice(task.data.get("form") or {})
        # The applicant owes the fee: the dossier waits in status 6 until the counter confirms payment.
        self.tasks.complete(task.data["task_id"], outcome="require_payment", note=notice.text,
                            amount_vnd=int(notice.fee))
