"""Process definitions (quy trình) from `<CATALOG_DIR>/processes.yaml`, checked when the service starts.

A process is a sequence of stages; a stage is one step, or parallel branches (song song) that all
finish before the next stage starts (the join). A step or a branch may carry a condition on the
applicant's declaration (`when`), and its agency may be fixed or relative to the dossier. A broken
file refuses to load with file:line:reason, so a bad edit never routes a dossier wrongly.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from motcua.access import AgencyTree
from motcua.calendar import Decision, Decisions, WorkingCalendar, parse_days
from motcua.catalog import load_agencies, load_data
from motcua.contracts.rpc import TASK_ACTIONS
from motcua.errors import NotFound, ValidationFailed
from motcua.identity import STAFF_ROLES

DEFAULT_ACTIONS = ("approve", "send_back", "request_supplement", "refuse", "stop")
RECEIVING = "receiving"  # `serving: receiving`: the area of the dossier's receiving agency


@dataclass(frozen=True)
class Condition:
    """`when`: a field of the applicant's declaration (tờ khai) equals, differs from, or is one of values."""

    field: str
    equals: object = None
    not_equals: object = None
    one_of: tuple = ()

    def holds(self, form: dict) -> bool:
        value = (form or {}).get(self.field)
        if self.one_of:
            return value in self.one_of
        if self.not_equals is not None:
            return value != self.not_equals
        return value == self.equals


@dataclass(frozen=True)
class AgencyRule:
    """Where a step goes: a fixed agency, or the agency under `under` that serves the dossier's area
    (e.g. the police of the applicant's commune: `serving: receiving` or `serving: form.<field>`)."""

    code: str | None = None
    under: str | None = None
    serving: str | None = None


@dataclass(frozen=True)
class Step:
    """One step of a process: which agency, which role, how many working days (thời hạn bước)."""

    name: str
    agency: AgencyRule
    role: str
    allowance: Decimal
    handled_by: str = "staff"  # or "system": the agency's own worker takes it from its task queue
    actions: tuple[str, ...] = DEFAULT_ACTIONS
    transfer_to: tuple[str, ...] = ()
    when: Condition | None = None
    stage: int = 0
    branch: int = 0

    @property
    def agency_code(self) -> str | None:
        return self.agency.code


@dataclass(frozen=True)
class Branch:
    steps: tuple[int, ...]  # indices into Process.steps
    when: Condition | None = None


@dataclass(frozen=True)
class Process:
    procedure_code: str
    steps: tuple[Step, ...]
    stages: tuple[tuple[Branch, ...], ...]

    def branch_of(self, index: int) -> Branch:
        step = self.steps[index]
        return self.stages[step.stage][step.branch]

    def stage_steps(self, stage: int) -> set[int]:
        return {i for branch in self.stages[stage] for i in branch.steps}

    def remaining_allowance(self, index: int, form: dict) -> Decimal:
        """Working days still ahead after step `index`: the rest of its branch, then each later
        stage's longest branch (branches run side by side)."""
        step = self.steps[index]
        branch = self.branch_of(index).steps
        ahead = sum((self.steps[i].allowance for i in branch[branch.index(index) + 1:]
                     if self.applies(i, form)), Decimal(0))
        for stage in self.stages[step.stage + 1:]:
            ahead += max((sum((self.steps[i].allowance for i in b.steps if self.applies(i, form)), Decimal(0))
                          for b in stage if b.when is None or b.when.holds(form)), default=Decimal(0))
        return ahead

    def send_back_targets(self, index: int) -> list[int]:
        """The earlier steps step `index` may send the dossier back to (trả lại bước trước): those before it
        in its branch, and, from a branch's first step, the steps of the single-step stages before its stage."""
        branch = self.branch_of(index).steps
        targets = list(branch[:branch.index(index)])
        targets += [i for stage in self.stages[:self.steps[index].stage] if len(stage) == 1 for i in stage[0].steps]
        return sorted(set(targets))

    def actions_when_open(self, index: int) -> tuple[str, ...]:
        """What an open task of step `index` offers: the step's actions, send back only where there is an
        earlier step to go to."""
        return self._actions_when_open[index]

    @cached_property
    def _actions_when_open(self) -> tuple[tuple[str, ...], ...]:
        # Asked for every task of every inbox: worked out once per step.
        return tuple(tuple(a for a in step.actions if a != "send_back" or self.send_back_targets(i))
                     for i, step in enumerate(self.steps))

    def applies(self, index: int, form: dict) -> bool:
        """Step `index` is taken for this declaration (its `when`, if any, holds)."""
        when = self.steps[index].when
        return when is None or when.holds(form)


@dataclass
class Processes:
    """What workflow reads from the catalogue: the processes, the agencies' areas, the calendar. Read-only
    but for the calendar, which follows the official decisions recorded through the API (`use_decisions`)."""

    processes: dict[str, Process]
    calendar: WorkingCalendar
    tree: AgencyTree  # leaders' and agency admins' oversight of their sub-agencies; relative agencies
    serves: dict[str, tuple[str, ...]]
    official: Decisions = Decisions()  # calendar.yaml's decisions; those recorded later go on top

    def counting_with(self, recorded: list[tuple[Decision, bool]]) -> WorkingCalendar:
        """The calendar with calendar.yaml's decisions and `recorded` (each with whether it decides its
        year) on top, a later one about a date replacing the earlier."""
        return self.calendar.with_decisions(self.official.merged(recorded))

    def use_decisions(self, recorded: list[tuple[Decision, bool]]) -> None:
        """Count every step's deadline with `recorded` from now on (see `counting_with`)."""
        self.calendar = self.counting_with(recorded)

    @property
    def system_agencies(self) -> set[str]:
        """Agencies whose own systems take some steps: their task queues must exist before any task."""
        return {s.agency_code for p in self.processes.values() for s in p.steps
                if s.handled_by == "system" and s.agency_code}

    def process(self, procedure_code: str) -> Process:
        try:
            return self.processes[procedure_code]
        except KeyError:
            raise NotFound(f"no process (quy trình) for procedure {procedure_code}",
                           field="procedure_code") from None

    def agency_for(self, step: Step, receiving_agency: str, form: dict) -> str:
        """The agency a step goes to for this dossier: a fixed one; the one under `under` serving the
        area; without `under`, the area's agency itself (the receiving commune, or the one the declaration
        names: a dossier received anywhere in the province, Decree 118/2025/NĐ-CP)."""
        rule = step.agency
        if rule.code:
            return rule.code
        area = receiving_agency if rule.serving == RECEIVING else (form or {}).get(rule.serving[len("form."):])
        if rule.under is None and area in self.serves:
            return area
        for code, served in self.serves.items():
            if self.tree.parents.get(code) == rule.under and area in served:
                return code
        # Raised into the handler: the message is parked with this reason until agencies.yaml knows the area.
        # Named by where the area comes from, never by its value: a declaration's value is the applicant's.
        where = f"under {rule.under} serves" if rule.under else "is"
        raise ValidationFailed(f"no agency {where} the dossier's {rule.serving} (step {step.name!r})", field="agency")


class _WorkingDays(fields.Field):
    """A step allowance in working days: positive, halves allowed."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            days = parse_days(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if days <= 0:
            raise ValidationError("a step needs a positive allowance")
        return days


class _ConditionSchema(Schema):
    field = fields.Str(required=True, validate=validate.Length(min=1))
    equals = fields.Raw(load_default=None)
    not_equals = fields.Raw(load_default=None)
    one_of = fields.List(fields.Raw(), load_default=list)

    @validates_schema
    def _one_test(self, data, **_):
        tests = [data.get("equals") is not None, data.get("not_equals") is not None, bool(data.get("one_of"))]
        if sum(tests) != 1:
            raise ValidationError("give exactly one of equals, not_equals, one_of")

    @post_load
    def _make(self, data, **_):
        return Condition(data["field"], data["equals"], data["not_equals"], tuple(data["one_of"]))


class _AgencyRuleSchema(Schema):
    under = fields.Str(load_default=None)  # None: the area's own agency (see Processes.agency_for)
    serving = fields.Str(required=True, validate=validate.Regexp(
        r"^(receiving|form\.\w+)$", error="serving is 'receiving' or 'form.<field>'"))


class _StepSchema(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1))
    agency_code = fields.Str(load_default=None)
    agency = fields.Nested(_AgencyRuleSchema, load_default=None)
    role = fields.Str(required=True, validate=validate.OneOf(STAFF_ROLES))
    allowance = _WorkingDays(required=True)
    handled_by = fields.Str(load_default="staff", validate=validate.OneOf(("staff", "system")))
    actions = fields.List(fields.Str(validate=validate.OneOf(TASK_ACTIONS)), load_default=None)
    transfer_to = fields.List(fields.Str(), load_default=list)
    when = fields.Nested(_ConditionSchema, load_default=None)

    @validates_schema
    def _agency(self, data, **_):
        if (data.get("agency_code") is None) == (data.get("agency") is None):
            raise ValidationError("give agency_code (fixed) or agency (relative to the dossier), not both",
                                  "agency_code")
        if data.get("transfer_to") and "transfer" not in (data.get("actions") or ()):
            raise ValidationError("transfer_to needs the transfer action", "transfer_to")

    @post_load
    def _make(self, data, **_):
        code, relative = data.pop("agency_code"), data["agency"]
        data["agency"] = AgencyRule(code=code) if relative is None else AgencyRule(**relative)
        data["actions"] = tuple(data["actions"] or DEFAULT_ACTIONS)
        data["transfer_to"] = tuple(data["transfer_to"])
        return data


class _BranchSchema(Schema):
    steps = fields.List(fields.Nested(_StepSchema), required=True, validate=validate.Length(min=1))
    when = fields.Nested(_ConditionSchema, load_default=None)


class _StageSchema(Schema):
    """A stage: one step (the step's own fields), or `parallel:` branches joined before the next stage."""

    def load(self, data, **kwargs):
        if isinstance(data, dict) and "parallel" in data:
            return {"parallel": _ParallelSchema().load(data, **kwargs)["parallel"]}
        return {"step": _StepSchema().load(data, **kwargs)}


class _ParallelSchema(Schema):
    parallel = fields.List(fields.Nested(_BranchSchema), required=True, validate=validate.Length(min=2))


class _ProcessSchema(Schema):
    procedure_code = fields.Str(required=True, validate=validate.Regexp(
        r"^\d\.\d{6}$", error="not a national procedure code (quote it: YAML reads 1.001193 as a number)"))
    steps = fields.List(fields.Nested(_StageSchema), required=True, validate=validate.Length(min=1))

    @post_load
    def _make(self, data, **_):
        steps: list[Step] = []
        stages = []
        for stage_index, stage in enumerate(data["steps"]):
            branches = ([{"steps": [stage["step"]], "when": None}] if "step" in stage else stage["parallel"])
            built = []
            for branch_index, branch in enumerate(branches):
                indices = []
                for step in branch["steps"]:
                    indices.append(len(steps))
                    steps.append(Step(**step, stage=stage_index, branch=branch_index))
                built.append(Branch(tuple(indices), branch["when"]))
            stages.append(tuple(built))
        return Process(data["procedure_code"], tuple(steps), tuple(stages))


class ProcessFileSchema(Schema):
    """The whole file; every agency named must be one of `agency_codes` (agencies.yaml)."""

    processes = fields.List(fields.Nested(_ProcessSchema), required=True, validate=validate.Length(min=1))

    def __init__(self, agency_codes: set[str], **kwargs):
        super().__init__(**kwargs)
        self.agency_codes = frozenset(agency_codes)

    @validates_schema
    def _consistent(self, data, **_):
        seen: set[str] = set()
        for index, process in enumerate(data["processes"]):
            if process.procedure_code in seen:
                raise ValidationError({"processes": {index: {"procedure_code": ["duplicate process"]}}})
            seen.add(process.procedure_code)
            for number, step in enumerate(process.steps):
                named = [step.agency.code or step.agency.under, *step.transfer_to]
                unknown = [code for code in named if code is not None and code not in self.agency_codes]
                if unknown:
                    raise ValidationError({"processes": {index: {"steps": {number: {
                        "agency_code": [f"unknown agency {unknown[0]} (not in agencies.yaml)"]}}}}})


def load_processes(catalog_dir: Path, time_zone: str) -> Processes:
    """Processes checked against agencies.yaml, and the calendar with calendar.yaml's overrides."""
    catalog_dir = Path(catalog_dir)
    agencies = load_agencies(catalog_dir)
    data = load_data(catalog_dir / "processes.yaml", ProcessFileSchema({a["code"] for a in agencies}))
    overrides = catalog_dir / "calendar.yaml"
    calendar = (WorkingCalendar.from_yaml(overrides, tz=time_zone) if overrides.exists()
                else WorkingCalendar(tz=time_zone))
    return Processes({p.procedure_code: p for p in data["processes"]}, calendar,
                   tree=AgencyTree.from_agencies(agencies),
                   serves={a["code"]: tuple(a.get("serves") or ()) for a in agencies}, official=calendar.decisions)
