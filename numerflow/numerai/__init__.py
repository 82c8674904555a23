"""Talking to Numerai: a bounded, classified numerapi client, safe downloads, the upload ledger."""
