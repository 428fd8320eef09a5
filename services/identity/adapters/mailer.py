"""Mail delivery: SMTP when `DEELRX_SMTP_URL` is set, else .eml files under `$DATA_DIR/mail/`."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib
import structlog

from deelrx_kit.settings import Settings
from services.identity.domain.mail import OutgoingMail
from services.identity.domain.mail_html import html_body
from services.identity.ports import Mailer

log = structlog.get_logger(__name__)


def build_message(mail: OutgoingMail, sender: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    # A stable id per staged mail lets receivers drop a redelivery after a lost ack.
    message["Message-ID"] = make_msgid(idstring=message_id, domain="deelrx.local")
    # Links stay on one unencoded line (quoted-printable would split them); lines are far
    # below SMTP's 998-octet limit. 8bit only when the text needs it (8BITMIME is universal).
    message.set_content(mail.text, cte="7bit" if mail.text.isascii() else "8bit")
    # The HTML part is rendered from the same text, every piece escaped.
    message.add_alternative(html_body(mail.subject, mail.text), subtype="html")
    return message


def recipient_field(mail: OutgoingMail, log_pii: bool) -> dict[str, str]:
    """Logs name a mail by its id; the address only when DEELRX_LOG_PII is switched on."""
    return {"to": mail.to} if log_pii else {}


class SmtpMailer:
    def __init__(self, url: str, sender: str, timeout: float = 15.0, *, log_pii: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("DEELRX_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout
        self.log_pii = log_pii

    async def send(self, mail: OutgoingMail, *, message_id: str) -> None:
        await aiosmtplib.send(
            build_message(mail, self.sender, message_id),
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            timeout=self.timeout,
        )
        log.info("mail_sent", mail_id=message_id, subject=mail.subject, **recipient_field(mail, self.log_pii))


class FileMailer:
    """Local development: the mail lands in a file; the log says where, never what it holds."""

    def __init__(self, directory: Path, sender: str, *, log_pii: bool = False) -> None:
        self.directory = directory
        self.sender = sender
        self.log_pii = log_pii

    async def send(self, mail: OutgoingMail, *, message_id: str) -> None:
        path = self.directory / f"{message_id}.eml"
        data = bytes(build_message(mail, self.sender, message_id))
        await asyncio.to_thread(self._write, path, data)
        log.info(
            "mail_written",
            mail_id=message_id,
            subject=mail.subject,
            path=str(path),
            **recipient_field(mail, self.log_pii),
        )

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o600)
        tmp.replace(path)  # readers never see half a mail


def mailer_from_settings(settings: Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from, log_pii=settings.log_pii)
    return FileMailer(settings.data_dir / "mail", settings.mail_from, log_pii=settings.log_pii)
