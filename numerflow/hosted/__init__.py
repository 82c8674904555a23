"""Hosted prediction: a slot's pickle for Numerai's model uploads, checked in Numerai's runtime."""
