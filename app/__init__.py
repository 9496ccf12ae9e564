"""Capteo: service requests of small Quebec businesses, captured and kept per Law 25."""
