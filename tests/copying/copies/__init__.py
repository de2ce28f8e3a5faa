"""Tests of copying/copies/."""
