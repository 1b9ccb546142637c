"""Notifications: apprise URLs and plain webhooks, queued and retried off the hot path."""
