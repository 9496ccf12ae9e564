"""A lead's fields, written out once: what each one is and where it goes.

Every list of a lead's fields elsewhere (the public form and rectification, the
audit of who wrote or read what, the Law 25 export and anonymization, what the
voicemail extractor may fill) is a filter of LEAD_FIELDS, in its order: that
order is the order of the form's fields and of the export's CSV columns.

The lead's other columns (status, channel, consent, geocoding state, ...) describe
the request's life, not the person, and are not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.i18n import N_


@dataclass(frozen=True)
class LeadField:
    name: str  # the column of `leads`
    label: str | None = None  # msgid naming it to a person (e.g. "to verify: ..."); None: not shown by name
    personal: bool = False  # about the person: named in the audit entry of whoever writes or reads it
    max_length: int | None = None  # what a person may type, on the public form or in a rectification
    multiline: bool = False
    on_form: bool = False  # asked by the public form
    required: bool = False  # the public form refuses a request without it
    editable: bool = False  # the business may rectify it (a Law 25 right), with the form's checks
    at_creation: bool = True  # leads.create() takes it; False: set later, by the channel that knows it
    erased: bool = False  # set to NULL when the lead is anonymized
    extracted: bool = False  # the voicemail extractor may fill it, then shown "to verify"
    exported: bool = False  # a scalar of the person's export; the export schema is stable: never unmark one
    listed: bool = False  # shown in the inbox list, so audited when the list is viewed

    def __post_init__(self) -> None:
        # Rectification validates with the form's own checks and limits: a field it
        # takes that the form lacks would fail only when someone edits it.
        if (self.on_form or self.editable) and not self.max_length:
            raise ValueError(f"{self.name}: a field a person types needs a max_length")
        if self.editable and not self.on_form:
            raise ValueError(f"{self.name}: an editable field is checked as the public form checks it")


LEAD_FIELDS = (
    LeadField("first_name", N_("First name"), personal=True, max_length=100, on_form=True, editable=True,
              erased=True, extracted=True, exported=True, listed=True),
    LeadField("last_name", N_("Last name"), personal=True, max_length=100, on_form=True, editable=True,
              erased=True, extracted=True, exported=True, listed=True),
    LeadField("phone", N_("Phone"), personal=True, max_length=40, on_form=True, required=True, editable=True,
              erased=True, extracted=True, exported=True, listed=True),
    LeadField("email", N_("Email"), personal=True, max_length=254, on_form=True, editable=True,
              erased=True, extracted=True, exported=True),
    LeadField("street_address", N_("Street address"), personal=True, max_length=200, on_form=True, editable=True,
              erased=True, extracted=True, exported=True),
    LeadField("postal_code", N_("Postal code"), personal=True, max_length=10, on_form=True, editable=True,
              erased=True, extracted=True, exported=True),
    # Not erased: anonymization replaces it with "Anonymized (Law 25)", so the lead still reads as one.
    LeadField("need", N_("Need"), personal=True, max_length=2000, multiline=True, on_form=True, required=True,
              editable=True, extracted=True, exported=True, listed=True),
    # The business's notes, for search; the export takes them from the timeline, with their dates.
    LeadField("notes", personal=True, erased=True),
    LeadField("callback_time", personal=True, max_length=200, on_form=True, editable=True, erased=True,
              exported=True),
    # Placed from the postal code: they would tell where the person lives.
    LeadField("latitude", erased=True),
    LeadField("longitude", erased=True),
    # The voicemail's words; the export takes them from the voicemails.
    LeadField("transcript", personal=True, erased=True),
    # Would link an anonymized lead back to the form the person submitted.
    LeadField("submission_token", erased=True),
    # The voicemail pipeline sets it after the lead exists.
    LeadField("urgent", N_("Urgent"), at_creation=False, extracted=True),
)
