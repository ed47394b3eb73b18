"""Tests of ``groove_sc.module``."""
