"""Tests of ``groove_sc.pl``."""
