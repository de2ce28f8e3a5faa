"""Tests of copying/orders/."""
