"""Production refuses keys that are missing, weak or published; development needs none."""
import pytest

from motcua import keys


def test_development_derives_a_stable_value_per_setting(monkeypatch):
    monkeypatch.delenv("MOTCUA_ENV", raising=False)
    monkeypatch.delenv("MOTCUA_TRACKING_KEY", raising=False)
    first = keys.key_setting("MOTCUA_TRACKING_KEY")
    assert first == keys.key_setting("MOTCUA_TRACKING_KEY") != keys.key_setting("MOTCUA_SEARCH_KEY")


@pytest.mark.parametrize("value, refusal", [
    (None, "must be set"),
    ("change-me-in-production", "weaker than 256"),
    ("a" * 64, "weaker than 256"),
    ("0123456789abcdef" * 2, "weaker than 256"),  # 16 bytes of hex
])
def test_production_refuses_missing_and_weak_keys(monkeypatch, value, refusal):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    if value is None:
        monkeypatch.delenv("MOTCUA_TRACKING_KEY", raising=False)
    else:
        monkeypatch.setenv("MOTCUA_TRACKING_KEY", value)
    with pytest.raises(SystemExit, match=refusal) as refused:
        keys.key_setting("MOTCUA_TRACKING_KEY")
    assert value is None or value not in str(refused.value)  # the refusal never prints the secret


def test_production_refuses_a_strong_key_published_in_the_repository(monkeypatch):
    published = keys.new_key()
    monkeypatch.setattr(keys, "_published_texts", lambda: (f"MOTCUA_TRACKING_KEY: {published}\n",))
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.setenv("MOTCUA_TRACKING_KEY", published)
    with pytest.raises(SystemExit, match="published in the repository"):
        keys.key_setting("MOTCUA_TRACKING_KEY")


def test_production_refuses_the_development_stand_in(monkeypatch):
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.setenv("MOTCUA_TRACKING_KEY", keys.development_value("MOTCUA_TRACKING_KEY"))
    with pytest.raises(SystemExit, match="published in the repository"):
        keys.key_setting("MOTCUA_TRACKING_KEY")


def test_production_takes_a_private_strong_key(monkeypatch):
    private = keys.new_key()
    monkeypatch.setenv("MOTCUA_ENV", "production")
    monkeypatch.setenv("MOTCUA_TRACKING_KEY", private)
    assert keys.key_setting("MOTCUA_TRACKING_KEY") == private.encode()
    assert keys.is_strong(keys.development_value("X")) and not keys.is_published(private)
