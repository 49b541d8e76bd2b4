"""Tests of training/ (data, classifier, labelfree, ship, bench)."""
