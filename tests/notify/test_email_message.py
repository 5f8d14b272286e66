"""The email notify composes: what a mail client reads back from its bytes (no server, no database)."""
from email import message_from_bytes, policy

from services.notify.providers import mbox_entry, plain_text_email

BODY = "Kính gửi Trần Thị Bình,\nHồ sơ 000.20.01.H56-261206-0401 đã được tiếp nhận lúc 10:00.\n"


def read_back(message) -> object:
    """The message as a mail client parses its bytes."""
    return message_from_bytes(message.as_bytes(), policy=policy.default)


def test_a_vietnamese_message_reads_back_whole():
    message = plain_text_email("Bộ phận Một cửa <motcua@hanoi.gov.vn>", "binh.tran@example.vn",
                               "Hồ sơ 000.20.01.H56-261206-0401 đã được tiếp nhận", BODY, "<e1.email@hanoi.gov.vn>")
    got = read_back(message)
    assert got["Subject"] == "Hồ sơ 000.20.01.H56-261206-0401 đã được tiếp nhận"
    assert got["From"].addresses[0].display_name == "Bộ phận Một cửa"
    assert got["From"].addresses[0].addr_spec == "motcua@hanoi.gov.vn"
    assert got["To"] == "binh.tran@example.vn"
    assert got["Message-ID"] == "<e1.email@hanoi.gov.vn>"
    assert got.get_content_type() == "text/plain" and got.get_content_charset() == "utf-8"
    assert got["Content-Transfer-Encoding"] == "quoted-printable"
    assert got.get_content() == BODY


def test_the_bytes_are_seven_bit_and_a_subject_cannot_carry_a_header_of_its_own():
    message = plain_text_email("motcua@motcua.local", "a@example.vn", "Nhắc hạn\r\nBcc: x@evil.example",
                               BODY, "<e2.email@motcua.local>")
    entry = mbox_entry(message)
    assert entry.isascii()  # quoted-printable body, RFC 2047 headers: any relay carries it unchanged
    got = read_back(message)
    assert got["Bcc"] is None
    assert got["Subject"] == "Nhắc hạn Bcc: x@evil.example"
    assert got["From"] == "motcua@motcua.local"


def test_an_ascii_subject_stays_as_written():
    got = read_back(plain_text_email("", "a@example.vn", "Reminder", "plain", "<e3.email@motcua.local>"))
    assert got["Subject"] == "Reminder" and got.get_content() == "plain"
