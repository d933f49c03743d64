"""Benchmarks: run with `make bench`. They measure and print; they assert nothing about speed."""
