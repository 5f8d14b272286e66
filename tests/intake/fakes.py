"""In-memory stand-ins of intake's adapters: the repository, its unit of work, the blob store. Rule
tests run the service layer and the aggregate against them, with no database and no files."""
from __future__ import annotations

from collections import Counter
from datetime import date

from motcua.errors import NotFound
from motcua.fakes import FakeUnitOfWork
from services.intake.domain import Dossier, dossier_code


class FakeDossierRepository:
    def __init__(self):
        self.dossiers: dict[str, Dossier] = {}
        self.counters: Counter = Counter()

    def get(self, code: str, for_update: bool = True) -> Dossier | None:
        return self.dossiers.get(code)

    def next_code(self, agency_code: str, day: date) -> str:
        self.counters[agency_code, day] += 1
        return dossier_code(agency_code, day, self.counters[agency_code, day])

    def add(self, dossier: Dossier) -> None:
        dossier.id = len(self.dossiers) + 1
        self.dossiers[dossier.code] = dossier

    def save(self, dossier: Dossier) -> None:
        assert self.dossiers[dossier.code] is dossier, "saved a dossier the repository did not give"


class FakeShipmentRepository:
    def __init__(self):
        self.owed: dict[tuple[str, str], object] = {}

    def owe(self, code: str, kind: str, at) -> None:
        self.owed.setdefault((code, kind), at)


class FakeIntakeUnitOfWork(FakeUnitOfWork):
    def __init__(self):
        super().__init__("intake")
        self.dossiers = FakeDossierRepository()
        self.shipments = FakeShipmentRepository()


class FakeBlobStore:
    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def put(self, sha256: str, data: bytes) -> None:
        self.blobs[sha256] = data

    def get(self, sha256: str) -> bytes:
        try:
            return self.blobs[sha256]
        except KeyError:
            raise NotFound(f"no blob {sha256}", field="sha256") from None
