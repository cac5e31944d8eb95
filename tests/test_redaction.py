"""Secrets kept out of what is shown (backups_app/redaction.py)."""

from tests.stacks import ENGINES


def test_mask_hides_setting_secrets_and_their_escaped_forms(settings, sources, tmp_path):
    from backups_app.redaction import mask

    settings.BACKUP_NOTIFY_WEBHOOK = "https://hooks.slack.com/services/T0/B0/SECRETPATH"
    sources(postgres=(ENGINES["postgres"], {"dbname": "x", "password": "pw-with-cr\r"}))
    text = ("posting to https://hooks.slack.com/services/T0/B0/SECRETPATH failed; "
            "Illegal header value b'pw-with-cr\\r'")
    masked = mask(text)
    assert "SECRETPATH" not in masked and "pw-with-cr" not in masked
