"""Templates as data: Vietnamese kept intact, SMS unaccented in one GSM-7 segment, agency overrides,
previews, and mistakes caught when notify starts."""
from datetime import datetime, timezone

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from motcua.catalog import CatalogError
from motcua.errors import NotFound
from services.notify.templates import (
    SAMPLES,
    Templates,
    _env,
    local_time,
    message_context,
    preview,
    templatable,
    variables,
)
from tests.notify.conftest import (
    AGENCY,
    AGENCY_NAMES,
    CODE,
    TZ,
    dossier_overdue,
    dossier_received,
    dossier_rescheduled,
    dossier_result_ready,
    event,
    task_overdue,
)

OTHER_AGENCY = "000.20.01.H56"


def render(payload, channel="email", templates=None, agency=None):
    e = event(payload)
    context = message_context(e.event_type, e.data, TZ, AGENCY_NAMES)
    return (templates or Templates.load()).render(e.event_type, channel, context, agency)


def write(tmp_path, received_body="Kính gửi {{ full_name }}", subject="Hồ sơ {{ code }}", name="templates.yaml"):
    path = tmp_path / name
    path.write_text(
        "events:\n"
        "  dossier_received:\n"
        "    email:\n"
        f"      subject: \"{subject}\"\n"
        "      body: |\n"
        f"        {received_body}\n"
        "  dossier_result_ready:\n"
        "    sms:\n"
        "      text: \"Kết quả {{ code }}\"\n", encoding="utf-8")
    return path


def test_received_message_keeps_vietnamese_and_uses_province_time():
    message = render(dossier_received())
    assert message.subject == f"[Một cửa] Đã tiếp nhận hồ sơ {CODE}"
    assert "Kính gửi Ông/Bà Nguyễn Thị Ánh," in message.body
    assert "Thủ tục:               Đăng ký khai sinh" in message.body
    assert "Cơ quan tiếp nhận:     Sở Tư pháp" in message.body
    assert "Thời gian tiếp nhận:   24/02/2026 09:05" in message.body  # 02:05 UTC
    assert "Ngày hẹn trả kết quả:  27/02/2026 16:00" in message.body  # 09:00 UTC


def test_sms_is_unaccented_gsm7_in_one_segment():
    message = render(dossier_result_ready(), "sms")
    assert message.body.startswith(f"Ho so {CODE} da co ket qua. Moi Ong/Ba nhan tai Bo phan Mot cua")
    assert (message.encoding, message.segments) == ("GSM-7", 1)


def test_every_shipped_sms_fits_one_segment_with_the_sample_data():
    templates = Templates.load()
    for event_type in SAMPLES:
        for channel in templates.channels(event_type, None):
            shown = preview(templates, event_type, channel, None, TZ, AGENCY_NAMES)
            if channel == "sms":
                assert (shown["encoding"], shown["segments"]) == ("GSM-7", 1) and shown["characters"] <= 160
            else:
                assert shown["subject"] and "{{" not in shown["body"]


def test_result_returned_is_sms_only_so_a_dossier_gets_two_emails():
    assert Templates.load().channels("result_returned", AGENCY) == ["sms"]
    assert Templates.load().channels("dossier_received", AGENCY) == ["email", "sms"]


def test_a_long_reason_is_cut_to_fit_one_sms():
    text = preview(Templates.load(), "dossier_refused", "sms", None, TZ, {})["text"]
    assert text.endswith("...") or len(text) <= 160
    long = {**SAMPLES["dossier_refused"], "reason": "Thiếu giấy tờ " * 40}
    rendered = Templates.load().render("dossier_refused", "sms", message_context("dossier_refused", long, TZ, {}))
    assert rendered.segments == 1 and rendered.body.endswith("...")


def test_local_time_crosses_midnight_into_the_next_day():
    assert local_time(datetime(2026, 2, 16, 18, 30, tzinfo=timezone.utc), TZ) == "17/02/2026 01:30"


@pytest.mark.parametrize("payload", [dossier_received(), dossier_result_ready(), dossier_rescheduled(),
                                     dossier_overdue(), task_overdue()], ids=lambda p: p["event_type"])
def test_context_offers_exactly_the_declared_variables(payload):
    e = event(payload)
    context = message_context(e.event_type, e.data, TZ, {})
    assert set(context) == variables(e.event_type)
    assert "contact" not in context and "email" not in context and "phone" not in context


def test_events_without_a_contact_cannot_have_citizen_templates():
    assert templatable("dossier_received") and templatable("result_returned")
    assert templatable("dossier_rescheduled")
    assert templatable("task_overdue") and templatable("dossier_overdue")  # to the agency's office
    assert not templatable("dossier_withdrawn") and not templatable("task_assigned") and not templatable("nope")


def test_apology_has_email_and_sms_and_overdue_email_only():
    templates = Templates.load()
    assert templates.channels("dossier_rescheduled", AGENCY) == ["email", "sms"]
    assert templates.channels("task_overdue", AGENCY) == templates.channels("dossier_overdue", AGENCY) == ["email"]


def test_unknown_agency_falls_back_to_its_code_and_returned_finds_it_in_the_dossier_code():
    e = event(dossier_received())
    assert message_context(e.event_type, e.data, TZ, {})["agency_name"] == AGENCY
    returned = message_context("result_returned", SAMPLES["result_returned"], TZ, AGENCY_NAMES)
    assert returned["agency_name"] == "Sở Tư pháp" and returned["method_label"] == "qua dịch vụ bưu chính công ích"


def test_an_agency_override_replaces_its_own_messages_only(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "agencies:\n"
        f"  \"{OTHER_AGENCY}\":\n"
        "    dossier_received:\n"
        "      sms:\n"
        "        text: \"UBND xã: hồ sơ {{ code }} đã nhận, hẹn {{ due_at }}\"\n", encoding="utf-8")
    templates = Templates.load(overrides=overrides)
    assert render(dossier_received(), "sms", templates, OTHER_AGENCY).body == \
        f"UBND xa: ho so {CODE} da nhan, hen 27/02/2026 16:00"
    assert render(dossier_received(), "sms", templates, AGENCY).body.startswith(f"Ho so {CODE} da duoc tiep nhan")
    shown = preview(templates, "dossier_received", "sms", OTHER_AGENCY, TZ, {})
    assert shown["text"].startswith("UBND xa: ho so") and shown["segments"] == 1


def test_an_override_too_long_for_one_sms_is_refused_at_load(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(f"agencies:\n  \"{OTHER_AGENCY}\":\n    dossier_refused:\n      sms:\n"
                         "        text: \"{{ reason }} {{ reason }} {{ reason }}\"\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"overrides.yaml: dossier_refused.sms: \d+ GSM-7 characters"):
        Templates.load(overrides=overrides)


def test_preview_of_a_message_that_does_not_exist_is_not_found():
    with pytest.raises(NotFound) as error:
        preview(Templates.load(), "result_returned", "email", None, TZ, {})
    assert error.value.field == "channel"


def test_strict_undefined_raises_instead_of_leaving_a_hole(tmp_path):
    templates = Templates.load(write(tmp_path))
    with pytest.raises(UndefinedError):
        templates.render("dossier_received", "email", {"code": "X"})  # no full_name


def test_sandbox_refuses_internals(tmp_path):
    with pytest.raises(CatalogError, match="SecurityError"):  # caught by the sample rendering at load
        Templates.load(write(tmp_path, received_body="{{ full_name.__class__.__mro__ }}"))
    sneaky = Templates({(None, "dossier_received", "sms"): {"text": _env.from_string("{{ code.__init__.__globals__ }}")}})
    with pytest.raises(SecurityError):
        sneaky.render("dossier_received", "sms", {"code": "X"})


def test_unknown_variable_is_refused_at_load_with_file_and_line(tmp_path):
    path = write(tmp_path, received_body="Số điện thoại {{ phone }}")
    with pytest.raises(CatalogError) as error:
        Templates.load(path)
    message = str(error.value)
    assert f"{path}:5:" in message and "events.dossier_received.email.body" in message and "phone" in message


def test_syntax_error_is_refused_at_load(tmp_path):
    with pytest.raises(CatalogError, match=r"templates.yaml:4: events.dossier_received.email.subject: template syntax"):
        Templates.load(write(tmp_path, subject="Hồ sơ {{ code"))


def test_an_event_without_contact_is_refused_at_load(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text("events:\n  dossier_withdrawn:\n    sms:\n      text: a\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="dossier_withdrawn: not an event that carries the applicant's contact"):
        Templates.load(path)


def test_multiline_subject_is_refused_at_load(tmp_path):
    with pytest.raises(CatalogError, match="single line"):
        Templates.load(write(tmp_path, subject="Hồ sơ\\n{{ code }}"))
