"""Tests of copying/runs/."""
