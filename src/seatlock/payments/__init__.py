"""Payments: initiation, verification, webhooks, refunds and late payments, over
interchangeable providers."""
