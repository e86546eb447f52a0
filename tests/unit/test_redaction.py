"""Passwords are cut out of every URL driftloop shows; the user, host and database stay."""

from driftloop.errors import ConfigError
from driftloop.redaction import redact, without_credentials


def test_a_url_password_is_replaced_and_the_store_stays_named():
    assert redact("ledger at postgresql+psycopg://app:pa55@db:5432/prod cannot be opened") == \
        "ledger at postgresql+psycopg://app:***@db:5432/prod cannot be opened"


def test_secret_query_values_are_replaced():
    assert redact("http://u:p@h/x?token=abc&b=1") == "http://u:***@h/x?token=***&b=1"
    assert redact("postgresql://h/db?sslmode=require&password=pw") == "postgresql://h/db?sslmode=require&password=***"


def test_urls_without_secrets_are_left_alone():
    for text in ("sqlite:////tmp/ledger.db", "http://127.0.0.1:5000", "file:///a/b@c", "a user@host mail address"):
        assert redact(text) == text


def test_a_browser_link_carries_no_credentials_at_all():
    assert without_credentials("https://u:p@mlflow.example/") == "https://mlflow.example/"
    assert without_credentials("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_user_error_is_redacted_when_it_is_made():
    assert str(ConfigError("ledger at postgresql://a:b@h/d down")) == "ledger at postgresql://a:***@h/d down"
