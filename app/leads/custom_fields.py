"""A business's own questions on its public form (custom fields).

Each field has a kind, FR and EN labels, a position, and for choices a list of
options `{"value", "fr", "en"}`. A lead keeps a snapshot of the labels with each
answer, so renaming or removing a field later never changes what a client said.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import apsw
from babel.dates import format_date
from babel.numbers import format_decimal

from app import audit
from app.db import Database
from app.i18n import LOCALES, N_

KINDS = ("short_text", "long_text", "number", "single_choice", "multiple_choice", "date", "yes_no")
KIND_LABELS = {"short_text": N_("Short text"), "long_text": N_("Long text"), "number": N_("Number"),
               "single_choice": N_("Single choice"), "multiple_choice": N_("Multiple choice"),
               "date": N_("Date"), "yes_no": N_("Yes or no")}
MAX_LENGTH = {"short_text": 200, "long_text": 2000}


@dataclass
class CustomField:
    id: int
    kind: str
    label_fr: str
    label_en: str
    required: bool
    options: list[dict]
    position: int

    @property
    def name(self) -> str:
        """The form input's name."""
        return f"cf_{self.id}"

    def label(self, lang: str) -> str:
        return self.label_fr if lang == "fr" else self.label_en

    def option_label(self, value: str, lang: str) -> str:
        for option in self.options:
            if option["value"] == value:
                return option[lang]
        return value


def _from_row(row: dict) -> CustomField:
    return CustomField(
        id=row["id"], kind=row["kind"], label_fr=row["label_fr"], label_en=row["label_en"],
        required=bool(row["required"]), options=json.loads(row["options"]), position=row["position"],
    )


def active_fields(db: Database, business_id: int) -> list[CustomField]:
    """The business's active fields, in its order."""
    return [
        _from_row(r)
        for r in db.query(
            "SELECT * FROM custom_fields WHERE business_id = ? AND active = 1 ORDER BY position, id",
            (business_id,),
        )
    ]


def add(
    conn: apsw.Connection,
    *,
    business_id: int,
    kind: str,
    label_fr: str,
    label_en: str,
    required: bool = False,
    options: list[dict] | None = None,
    actor: str | None = None,
) -> int:
    """A new question at the end of the form; audited when a person (`actor`) adds it."""
    if kind not in KINDS:
        raise ValueError(f"unknown custom field kind {kind!r}")
    if kind in ("single_choice", "multiple_choice") and not options:
        raise ValueError("a choice field needs options")
    position = next(iter(conn.execute(
        "SELECT coalesce(max(position), 0) + 1 AS p FROM custom_fields WHERE business_id = ?", (business_id,)
    )))["p"]
    conn.execute(
        "INSERT INTO custom_fields (business_id, position, kind, label_fr, label_en, required, options)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (business_id, position, kind, label_fr, label_en, int(required),
         json.dumps(options or [], ensure_ascii=False)),
    )
    field_id = conn.last_insert_rowid()
    _audit(conn, business_id, field_id, "custom_field.add", actor)
    return field_id


def _audit(conn: apsw.Connection, business_id: int, field_id: int, action: str, actor: str | None) -> None:
    if actor is not None:
        audit.record(conn, actor=actor, action=action, entity="custom_field", entity_id=field_id,
                     business_id=business_id, fields=["label_fr", "label_en"])


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def validate(field: CustomField, raw: list[str], clean) -> tuple[Any, str | None]:
    """(value, error message id) for the raw submitted values of one field.
    `clean` normalizes text (Unicode NFC, control characters out). Error ids are
    msgids the caller translates."""
    values = [clean(v, multiline=field.kind == "long_text") for v in raw]
    values = [v for v in values if v != ""]
    if not values:
        return None, (N_("This field is required.") if field.required else None)
    if field.kind == "multiple_choice":
        allowed = {o["value"] for o in field.options}
        chosen = list(dict.fromkeys(values))
        if not set(chosen) <= allowed:
            return None, N_("Choose among the options shown.")
        return chosen, None
    if len(values) > 1:
        return None, N_("Give a single answer.")
    value = values[0]
    if field.kind in MAX_LENGTH:
        if len(value) > MAX_LENGTH[field.kind]:
            return None, N_("This answer is too long.")
        return value, None
    if field.kind == "number":
        try:
            number = float(value.replace(",", ".").replace("\u00a0", "").replace(" ", ""))
        except ValueError:
            return None, N_("Enter a number.")
        if not math.isfinite(number) or abs(number) > 1e12:
            return None, N_("Enter a number.")
        return (int(number) if number.is_integer() else number), None
    if field.kind == "single_choice":
        if value not in {o["value"] for o in field.options}:
            return None, N_("Choose among the options shown.")
        return value, None
    if field.kind == "date":
        try:
            if not _DATE_RE.match(value):
                raise ValueError
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            return None, N_("Enter a date (YYYY-MM-DD).")
    if field.kind == "yes_no":
        if value not in ("yes", "no"):
            return None, N_("Answer yes or no.")
        return value, None
    raise AssertionError(field.kind)


def snapshot(field: CustomField, value: Any) -> dict:
    """What the lead stores for one answer: the labels as they were, and the value."""
    entry = {"kind": field.kind, "label_fr": field.label_fr, "label_en": field.label_en, "value": value}
    if field.kind in ("single_choice", "multiple_choice"):
        chosen = value if isinstance(value, list) else [value]
        entry["value_labels"] = [
            {"fr": field.option_label(v, "fr"), "en": field.option_label(v, "en")} for v in chosen
        ]
    return entry


def display(entry: dict, lang: str, yes: str, no: str) -> tuple[str, str]:
    """(label, shown value) of a stored answer, in a language."""
    label = entry["label_fr"] if lang == "fr" else entry["label_en"]
    if "value_labels" in entry:
        return label, ", ".join(v[lang] for v in entry["value_labels"])
    if entry["kind"] == "yes_no":
        return label, yes if entry["value"] == "yes" else no
    if entry["kind"] == "date":
        return label, format_date(date.fromisoformat(entry["value"]), format="long", locale=LOCALES[lang])
    if entry["kind"] == "number":
        return label, format_decimal(entry["value"], locale=LOCALES[lang])
    return label, str(entry["value"])


def get(db: Database, business_id: int, field_id: int) -> CustomField | None:
    row = db.query_one("SELECT * FROM custom_fields WHERE business_id = ? AND id = ? AND active = 1",
                       (business_id, field_id))
    return _from_row(row) if row else None


def update(conn: apsw.Connection, business_id: int, field_id: int, *, label_fr: str, label_en: str,
           required: bool, options: list[dict] | None, kind: str | None = None, actor: str | None = None) -> None:
    """New labels, required flag and options; `kind` (when given) changes the kind of answer:
    a choice needs options, any other kind drops them. Answers already received keep their
    snapshot, so they still show as they were given."""
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"unknown custom field kind {kind!r}")
        if kind in ("single_choice", "multiple_choice"):
            if not options:
                raise ValueError("a choice field needs options")
        else:
            options = []
    conn.execute(
        "UPDATE custom_fields SET kind = coalesce(?, kind), label_fr = ?, label_en = ?, required = ?,"
        " options = coalesce(?, options) WHERE business_id = ? AND id = ?",
        (kind, label_fr, label_en, int(required),
         json.dumps(options, ensure_ascii=False) if options is not None else None, business_id, field_id),
    )
    _audit(conn, business_id, field_id, "custom_field.edit", actor)


def move(conn: apsw.Connection, business_id: int, field_id: int, direction: int, *,
         actor: str | None = None) -> None:
    """Swap the field with its neighbour above (-1) or below (+1)."""
    fields = [r["id"] for r in conn.execute(
        "SELECT id FROM custom_fields WHERE business_id = ? AND active = 1 ORDER BY position, id", (business_id,))]
    i = fields.index(field_id)
    j = i + direction
    if 0 <= j < len(fields):
        fields[i], fields[j] = fields[j], fields[i]
        for position, fid in enumerate(fields, start=1):
            conn.execute("UPDATE custom_fields SET position = ? WHERE id = ?", (position, fid))
    _audit(conn, business_id, field_id, "custom_field.move", actor)


def remove(conn: apsw.Connection, business_id: int, field_id: int, *, actor: str | None = None) -> None:
    """Retired, not deleted: leads keep their snapshot of it anyway."""
    conn.execute("UPDATE custom_fields SET active = 0 WHERE business_id = ? AND id = ?", (business_id, field_id))
    _audit(conn, business_id, field_id, "custom_field.remove", actor)


def parse_options(text: str) -> list[dict]:
    """One option per line, "Français | English"."""
    options = []
    for i, line in enumerate(row for row in text.splitlines() if row.strip()):
        fr, _, en = line.partition("|")
        fr, en = fr.strip()[:100], (en.strip() or fr.strip())[:100]
        options.append({"value": f"o{i + 1}", "fr": fr, "en": en})
    return options
