"""Extraction of lead fields (name, phone, email, postal code, address, need, urgency) from voicemail transcripts."""
