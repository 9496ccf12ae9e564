"""Email through the operator's own SMTP server ([smtp] in capteo.toml): only
password-reset links go this way. Optional like the other outside services."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from app.config import Config

TIMEOUT_S = 15


class EmailError(Exception):
    pass


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    starttls: bool
    username: str
    password: str | None
    from_address: str

    @classmethod
    def from_config(cls, config: Config) -> Mailer | None:
        """None when no SMTP server is configured."""
        if not config.smtp.host or not config.smtp.from_address:
            return None
        return cls(config.smtp.host, config.smtp.port, config.smtp.starttls, config.smtp.username,
                   config.provider_secret("smtp_password"), config.smtp.from_address)

    def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.from_address, to, subject
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as e:
            raise EmailError(type(e).__name__) from e
